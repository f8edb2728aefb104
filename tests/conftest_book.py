"""The book build shared by tests/test_book.py and tests/test_browser.py.

``from conftest_book import built_book`` gives a test the result of one real
``python scripts/build_book.py`` per test run. Under pytest-xdist the two test files may land on
different workers; a file lock and a stamp holding the run's id (``PYTEST_XDIST_TESTRUNUID``,
the same on every worker) make the first worker build and the others reuse its result.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import http.server
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import websocket  # websocket-client, pinned in requirements.txt
except ImportError:  # the browser tests skip (or fail under CI=true) without it
    websocket = None

ROOT = Path(__file__).resolve().parents[1]
HTML_DIR = ROOT / "_build" / "html"
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

_STATE_DIR = Path(tempfile.gettempdir()) / (
    "ultramem-book-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
)


@dataclass(frozen=True)
class BuiltBook:
    returncode: int
    seconds: float
    log: str
    html_dir: Path = HTML_DIR

    def check(self) -> None:
        if self.returncode != 0:
            pytest.fail(f"scripts/build_book.py exited {self.returncode}:\n{self.log[-6000:]}")


def _run_id() -> str:
    return os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}"


def build_once() -> BuiltBook:
    _STATE_DIR.mkdir(parents=True, exist_ok=True)
    stamp = _STATE_DIR / "stamp.json"
    with open(_STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if stamp.is_file():
                saved = json.loads(stamp.read_text())
                if saved["run_id"] == _run_id():
                    return BuiltBook(saved["returncode"], saved["seconds"], saved["log"])
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, str(SCRIPTS / "build_book.py")],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
            )
            result = BuiltBook(proc.returncode, time.perf_counter() - start, proc.stdout + proc.stderr)
            stamp.write_text(
                json.dumps({"run_id": _run_id(), "returncode": result.returncode,
                            "seconds": result.seconds, "log": result.log[-20000:]})
            )
            return result
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def built_book() -> BuiltBook:
    # ULTRAMEM_BOOK_HTML=<a built site>: test that site as it is, without building (to iterate on
    # the browser tests; CI never sets it)
    given = os.environ.get("ULTRAMEM_BOOK_HTML")
    if given:
        return BuiltBook(0, 0.0, "", Path(given))
    book = build_once()
    book.check()
    return book


# ---------------------------------------------------------------------------------------------
# Headless Chromium over the Chrome DevTools Protocol, shared by the browser tests
# (tests/test_browser.py, tests/test_accessibility.py): ``from conftest_book import browser, site``.
# ---------------------------------------------------------------------------------------------


PAGE_TIMEOUT = 60.0


def find_chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    for name in filter(None, candidates):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()


def require_chromium() -> None:
    """Skip the calling test module without Chromium or websocket-client, except under CI=true."""
    missing = None
    if CHROMIUM is None:
        missing = "no chromium found (apt-get install -y chromium)"
    elif websocket is None:
        missing = "websocket-client is not installed (requirements.txt)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {missing}", pytrace=False)
        pytest.skip(missing, allow_module_level=True)


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


@contextlib.contextmanager
def serve(html_dir: Path = HTML_DIR):
    """Serve ``html_dir`` on a local HTTP server; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(built_book):
    """The built site on a local HTTP server: its base URL."""
    with serve(built_book.html_dir) as url:
        yield url


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def chromium_session():
    """Start headless Chromium and yield a :class:`DevTools` attached to one blank tab."""
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


@pytest.fixture(scope="module")
def browser():
    with chromium_session() as tools:
        yield tools


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


# ---------------------------------------------------------------------------------------------
# axe-core: WCAG 2.0 / 2.1, levels A and AA
# ---------------------------------------------------------------------------------------------

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def run_axe(tools: DevTools, context: str = "document") -> list[dict]:
    """Run axe-core (``scripts/book_assets.py`` fetches and caches it) on the loaded page.

    Returns one dict per violated rule: ``id``, ``impact``, ``help`` and ``nodes`` (each with the
    element's CSS ``target``, its ``html`` and axe's ``summary`` of what fails).
    """
    import book_assets

    if not tools.evaluate("typeof window.axe === 'object'"):
        tools.evaluate(book_assets.axe_js().read_text(encoding="utf-8") + "\n;true")
    options = json.dumps({"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]})
    return tools.evaluate(
        f"""axe.run({context}, {options}).then(r => r.violations.map(v => ({{
              id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map(n => ({{target: n.target.join(' '), html: n.html.slice(0, 200),
                                         impact: n.impact, summary: n.failureSummary}}))}})))"""
    )
