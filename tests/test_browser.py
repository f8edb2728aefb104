"""Every built page in headless Chromium, driven over the Chrome DevTools Protocol.

For each page of ``_toc.yml``: no failed request, no request to another host, no console error or
uncaught exception, every plotly figure drawn (an ``svg.main-svg``), math typeset by MathJax
where the page has math, widgets drawn where the page has widget state. On the preface, a real
mouse click on a plotly slider step must change the figure.

Chromium: ``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on the path.
Without one the tests are skipped, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest_book import HTML_DIR, built_book  # noqa: F401  (built_book is a fixture)

import build_book

websocket = pytest.importorskip("websocket")  # websocket-client, pinned in requirements.txt

PAGE_TIMEOUT = 60.0


def find_chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    for name in filter(None, candidates):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
if CHROMIUM is None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but no chromium found (apt-get install -y chromium)", pytrace=False)
    pytest.skip("chromium not installed", allow_module_level=True)


class DevTools:
    """The few Chrome DevTools Protocol calls the tests need, over one flattened session."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=PAGE_TIMEOUT, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.session: str | None = None

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Collect events for a while."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                break
        self.ws.settimeout(PAGE_TIMEOUT)

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = PAGE_TIMEOUT):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            self.pump(0.1)
        raise TimeoutError(f"timed out waiting for: {expression}")


@pytest.fixture(scope="module")
def site(built_book):
    """The built site on a local HTTP server: its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(built_book.html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="ultramem-chromium-")
    proc = subprocess.Popen(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", "--window-size=1280,1000", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError(f"chromium did not start (exit {proc.poll()})")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        tools = DevTools(f"ws://127.0.0.1:{port}{path}")
        target = tools.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = tools.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=False
        )
        tools.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            tools.send(f"{domain}.enable")
        tools.send("Network.setCacheDisabled", {"cacheDisabled": True})
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def visit(tools: DevTools, url: str) -> dict:
    """Load ``url``, let it settle, and return what the page did."""
    tools.events.clear()
    tools.send("Page.navigate", {"url": url})
    tools.wait_for("document.readyState === 'complete'")
    # Drawing (plotly, MathJax, widgets) continues after the load event.
    tools.wait_for(
        """(() => {
          const figs = [...document.querySelectorAll('.plotly-graph-div')];
          const figsDone = figs.every(d => d.querySelector('svg.main-svg'));
          const math = document.querySelector('.math, span.math, div.math');
          const mathDone = !math || !window.MathJax || !MathJax.startup ||
                           (MathJax.startup.promise && document.querySelector('mjx-container'));
          return figsDone && !!mathDone;
        })()""",
    )
    # MathJax typesets asynchronously; layout (and figure positions) settle after it.
    tools.evaluate("window.MathJax && MathJax.startup && MathJax.startup.promise"
                   " ? MathJax.startup.promise.then(() => true) : true")
    tools.pump(1.0)
    events = list(tools.events)
    requests = {e["params"]["requestId"]: e["params"]["request"]["url"]
                for e in events if e.get("method") == "Network.requestWillBeSent"}
    failed = [requests.get(e["params"]["requestId"], "?") + ": " + e["params"].get("errorText", "")
              for e in events if e.get("method") == "Network.loadingFailed"]
    failed += [f"{e['params']['response']['url']}: HTTP {e['params']['response']['status']}"
               for e in events if e.get("method") == "Network.responseReceived"
               and e["params"]["response"]["status"] >= 400]
    console = [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])
               for e in events if e.get("method") == "Runtime.consoleAPICalled"
               and e["params"]["type"] in ("error", "assert")]
    console += [e["params"]["exceptionDetails"].get("exception", {}).get("description")
                or e["params"]["exceptionDetails"].get("text", "")
                for e in events if e.get("method") == "Runtime.exceptionThrown"]
    console += [e["params"]["entry"]["text"] for e in events
                if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
    return {"requests": list(requests.values()), "failed": failed, "console": console}


# index.html only redirects to the root page (tested on its own below: following a redirect
# aborts the first page's requests, which would read as failures here).
PAGES = [f"{name}.html" for name in build_book.toc_files()] + ["search.html"]


def test_index_redirects_to_the_root_page(browser, site):
    browser.send("Page.navigate", {"url": urllib.parse.urljoin(site, "index.html")})
    root = build_book.toc_files()[0]
    assert browser.wait_for(f"location.pathname.endsWith('/{root}.html') && location.pathname", 20)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_cleanly(browser, site, page):
    result = visit(browser, urllib.parse.urljoin(site, page))
    hosts = {urllib.parse.urlsplit(u).hostname for u in result["requests"]
             if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts <= {"127.0.0.1"}, result["requests"]
    assert result["failed"] == []
    assert result["console"] == []

    state = browser.evaluate(
        """(() => ({
          figures: document.querySelectorAll('.plotly-graph-div').length,
          drawn: [...document.querySelectorAll('.plotly-graph-div')]
                   .filter(d => d.querySelector('svg.main-svg')).length,
          mathSource: document.querySelectorAll('.math').length,
          typeset: document.querySelectorAll('mjx-container').length,
          widgetViews: document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"]').length,
          widgets: document.querySelectorAll('.jupyter-widgets, .widget-dropdown').length,
        }))()"""
    )
    assert state["drawn"] == state["figures"], state
    if state["mathSource"]:
        assert state["typeset"] > 0, state
    if state["widgetViews"]:
        assert state["widgets"] > 0, state


def test_preface_has_math_a_figure_and_a_widget(browser, site):
    visit(browser, urllib.parse.urljoin(site, "book/00_preface.html"))
    counts = browser.evaluate(
        """({figures: document.querySelectorAll('.plotly-graph-div svg.main-svg').length > 0,
             math: document.querySelectorAll('mjx-container').length > 0,
             dropdown: !!document.querySelector('.widget-dropdown select')})"""
    )
    assert counts == {"figures": True, "math": True, "dropdown": True}


def test_plotly_slider_click_changes_the_figure(browser, site):
    visit(browser, urllib.parse.urljoin(site, "book/00_preface.html"))
    before = browser.evaluate(
        """(() => {
          const gd = [...document.querySelectorAll('.plotly-graph-div')]
                       .find(d => d.layout && d.layout.sliders && d.layout.sliders.length);
          gd.id = gd.id || 'slider-figure';
          window.__sliderFigure = gd;
          const blanks = gd.data[0].z.flat().filter(v => v === null).length;
          const label = gd.querySelector('.slider-container .slider-label-group text');
          label.scrollIntoView({block: 'center'});
          const box = label.getBoundingClientRect();
          return {active: gd.layout.sliders[0].active, blanks: blanks,
                  x: box.x + box.width / 2, y: box.y + box.height / 2};
        })()"""
    )
    assert before["blanks"] == 0  # the full map is the static default
    # Plotly's slider moves on mouse down anywhere over the rail: press over the first step label.
    rail = browser.evaluate(
        """(() => {
          const rect = window.__sliderFigure.querySelector('.slider-rail-touch-rect')
                        .getBoundingClientRect();
          return {y: rect.y + rect.height / 2};
        })()"""
    )
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", {
            "type": kind, "x": before["x"], "y": rail["y"], "button": "left", "clickCount": 1,
        })
    # Plotly sets the slider's `active` at once and runs the step's restyle on the next frame.
    browser.wait_for("window.__sliderFigure.layout.sliders[0].active === 0", timeout=10)
    blanks = "window.__sliderFigure.data[0].z.flat().filter(v => v === null).length"
    try:
        browser.wait_for(f"{blanks} > 0", timeout=10)
    except TimeoutError:
        pytest.fail("moving the slider to session 1 should blank the later chapters")


# ---------------------------------------------------------------------------------------------
# Quizzes: static HTML at the end of chapters 1-11, answered by clicking, without a kernel.
# ---------------------------------------------------------------------------------------------

QUIZ_PAGE = "book/01_memory_layers.html"


def test_quiz_gives_feedback_on_click_offline(browser, site):
    """A chapter's quiz renders with its math typeset, every feedback hidden until an answer is
    chosen; a real click on a wrong and then on the right answer shows each one's verdict and
    feedback (and only the chosen one's); the page asks no other host and logs no error."""
    result = visit(browser, urllib.parse.urljoin(site, QUIZ_PAGE))
    hosts = {urllib.parse.urlsplit(u).hostname for u in result["requests"]
             if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts <= {"127.0.0.1"}, result["requests"]
    assert result["failed"] == [] and result["console"] == []
    quiz = browser.evaluate(
        """(() => {
          const q = document.querySelector('.ue-quiz');
          if (!q) return null;
          return {questions: q.querySelectorAll('fieldset').length,
                  hidden: [...q.querySelectorAll('.ue-feedback')].every(f => getComputedStyle(f).display === 'none'),
                  typeset: q.querySelectorAll('mjx-container').length,
                  rawTex: q.innerText.includes('\\\\(')};
        })()"""
    )
    assert quiz is not None, f"no quiz on {QUIZ_PAGE}"
    assert quiz["questions"] >= 5 and quiz["hidden"] and quiz["typeset"] > 0 and not quiz["rawTex"], quiz
    for kind, verdict in (("wrong", "Not quite."), ("right", "Right.")):
        target = browser.evaluate(
            f"""(() => {{
              const input = document.querySelector('.ue-quiz fieldset input.ue-{kind}');
              const label = document.querySelector('label[for="' + input.id + '"]');
              label.scrollIntoView({{block: 'center'}});
              const box = label.getBoundingClientRect();
              return {{id: input.id, x: box.x + box.width / 2, y: box.y + box.height / 2}};
            }})()"""
        )
        for event in ("mouseMoved", "mousePressed", "mouseReleased"):
            browser.send("Input.dispatchMouseEvent", {
                "type": event, "x": target["x"], "y": target["y"], "button": "left", "clickCount": 1,
            })
        shown = browser.wait_for(
            f"""(() => {{
              const input = document.getElementById('{target["id"]}');
              const visible = [...input.closest('fieldset').querySelectorAll('.ue-feedback')]
                                .filter(f => getComputedStyle(f).display !== 'none');
              return input.checked && visible.length === 1 && visible[0].parentElement.contains(input)
                     && visible[0].innerText.trim();
            }})()""",
            timeout=10,
        )
        assert shown.startswith(verdict), shown
