"""ultramem_edu.check_env and the plotly display helper it reports on."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from ultramem_edu import check_env
from ultramem_edu.viz import _plotly


def test_command_reports_every_library_with_its_installed_version():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "ultramem_edu.check_env"], capture_output=True, text=True, env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in proc.stdout.splitlines() if line.strip())
    for name in check_env.LIBRARIES:
        assert lines[name] == importlib.metadata.version(name)
    assert lines["python"].startswith(".".join(map(str, sys.version_info[:3])))
    assert lines["CUDA"].startswith("yes: ") or lines["CUDA"] == "no (CPU only)"
    assert lines["Triton on CPU"].startswith("runs a kernel on the CPU")
    assert lines["host"] == "local"
    assert "plotly renderer" in lines


def test_triton_probe_reports_a_failing_kernel():
    ok, message = check_env.triton_interpreter("import sys; sys.exit('kernel mismatch')", timeout=60)
    assert not ok and "kernel mismatch" in message


def test_triton_probe_runs_in_the_interpreter():
    ok, message = check_env.triton_interpreter(
        "import os; assert os.environ['TRITON_INTERPRET'] == '1'; print('ok')", timeout=60
    )
    assert ok, message


BINDER_ENV = {  # what BinderHub sets for a server it starts (one launch of this repository)
    "BINDER_LAUNCH_HOST": "https://mybinder.org/",
    "BINDER_REPO_URL": "https://github.com/ultramem-edu/ultramem-edu",
    "BINDER_REF_URL": "https://github.com/ultramem-edu/ultramem-edu/tree/0123abc",
    "BINDER_REQUEST": "v2/gh/ultramem-edu/ultramem-edu/main",
    "BINDER_PERSISTENT_REQUEST": "v2/gh/ultramem-edu/ultramem-edu/0123abc",
}


@pytest.mark.parametrize(
    "modules, environ, host",
    [
        ({"google.colab": object()}, {}, "colab"),
        ({}, {"COLAB_RELEASE_TAG": "release-colab_20260101-060000_RC00"}, "colab"),
        *[({}, {key: value, "HOME": "/home/jovyan"}, "binder") for key, value in BINDER_ENV.items()],
        ({}, {"HOME": "/root", "JUPYTERHUB_USER": "someone", "XBINDER": "1"}, "local"),
    ],
)
def test_detect_host(modules, environ, host):
    assert check_env.detect_host(modules, environ) == host


@pytest.mark.parametrize(
    "extra_env, host",
    [(BINDER_ENV, "binder"), ({"COLAB_RELEASE_TAG": "release-colab_20260101"}, "colab"), ({}, "local")],
)
def test_command_names_the_host_it_runs_on(extra_env, host):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BINDER_", "COLAB_"))}
    code = "from ultramem_edu import check_env; print(check_env.report(check_env.collect(run_triton=False)))"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **extra_env}, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    line = next(line for line in out.splitlines() if line.startswith("host "))
    assert line.split(maxsplit=1)[1] == (f"{host} ({check_env.HOST_NOTES[host]})" if host != "local" else "local")


def test_missing_required_names_what_is_missing():
    info = {"versions": {"torch": "2.0", "numpy": None, "plotly": "6.0", "ipywidgets": None, "triton": None}}
    assert check_env.missing_required(info) == ["numpy", "ipywidgets"]


# --- ultramem_edu.viz._plotly ------------------------------------------------------------------


def _figure():
    return go.Figure(go.Scatter(y=[1.0, 3.0, 2.0]), layout=dict(title="a </script> title", height=300))


def test_figure_html_is_a_self_contained_drawing_script():
    html = _plotly.figure_html(_figure(), div_id="fig-1")
    assert html.startswith('<div id="fig-1" class="plotly-graph-div" style="width:100%;height:300px;">')
    assert "</script>" not in html.split("<script>", 1)[1][: -len("</script>")]
    spec = re.search(r"var spec = (\{.*?\});\n", html).group(1)
    payload = json.loads(spec.replace("<\\/", "</"))
    assert payload["layout"]["title"]["text"] == "a </script> title"
    assert payload["config"]["responsive"] is True
    assert "DOMContentLoaded" in html and "cdn" not in html.lower()


def test_figure_html_rejects_other_objects():
    with pytest.raises(ValueError, match="fig"):
        _plotly.figure_html([1, 2, 3])


def test_show_emits_html_during_a_book_build(monkeypatch):
    captured = []
    monkeypatch.setenv(_plotly.BOOK_BUILD_ENV, "1")
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: captured.append((obj, raw)))
    _plotly.show(_figure())
    (bundle, raw), = captured
    assert raw and set(bundle) == {"text/html", "text/plain"}
    assert 'class="plotly-graph-div"' in bundle["text/html"]
    assert bundle["text/plain"] == "<plotly figure: a </script> title>"


def test_show_uses_plotly_outside_a_build(monkeypatch):
    monkeypatch.delenv(_plotly.BOOK_BUILD_ENV, raising=False)
    shown = []
    monkeypatch.setattr(go.Figure, "show", lambda self, **kw: shown.append(kw))
    _plotly.show(_figure(), config={"scrollZoom": False})
    assert shown == [{"config": {"scrollZoom": False}}]


def test_setup_renderer_switches_only_during_a_build(monkeypatch):
    before = pio.renderers.default
    try:
        monkeypatch.delenv(_plotly.BOOK_BUILD_ENV, raising=False)
        assert _plotly.setup_renderer() == before
        monkeypatch.setenv(_plotly.BOOK_BUILD_ENV, "1")
        assert _plotly.setup_renderer() == _plotly.BOOK_RENDERER
        bundle = pio.renderers[_plotly.BOOK_RENDERER].to_mimebundle(_figure().to_plotly_json())
        assert 'class="plotly-graph-div"' in bundle["text/html"]
    finally:
        pio.renderers.default = before
