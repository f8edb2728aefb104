"""Notebook execution neither stalls on a finished cell nor waits silently on a hanging one.

* ``scripts/kernel_poll.py``: a kernel reply whose wake-up was consumed (by a send on the same
  socket, as nbclient's Output widget does, or otherwise) is picked up at once or within one short
  slice, not at the end of the cell timeout (both reproduced on socket pairs below).
* ``scripts/execute_notebook.py``: a cell that hangs fails at the per-cell timeout with an error
  naming the notebook and the cell.
* The book build (``_config.yml``, the ``kernel_poll`` extension) and nbval (``pyproject.toml``)
  have a per-cell timeout, and the build installs the bounded polling.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import execute_notebook  # noqa: E402
import kernel_poll  # noqa: E402


async def _reply_queued_during_a_send(timeout: float) -> tuple[str, float]:
    """The stall of a widget cell, on a socket pair: a pending ``get_msg`` on the client's shell
    channel, the kernel's ``execute_reply`` arriving, and then the client sending a ``comm_msg`` on the
    same socket (nbclient's Output widget does this) before the event loop runs again. Session.send
    sends through a synchronous shadow of the socket, which consumes the reply's wake-up. Returns the
    message type and how long the poll took after the send.
    """
    actx, sctx = zmq.asyncio.Context(), zmq.Context()
    kernel = sctx.socket(zmq.ROUTER)
    client = actx.socket(zmq.DEALER)
    try:
        session = Session(key=b"")
        port = kernel.bind_to_random_port("tcp://127.0.0.1")
        client.connect(f"tcp://127.0.0.1:{port}")
        channel = AsyncZMQSocketChannel(client, session)
        channel.send(session.msg("kernel_info_request"))
        ident, _ = session.feed_identities(kernel.recv_multipart())
        session.send(kernel, "kernel_info_reply", ident=ident)
        await channel.get_msg(timeout=10)  # connected and flowing
        pending = asyncio.ensure_future(channel.get_msg(timeout=timeout))
        await asyncio.sleep(0.1)  # the poll now sleeps on the FD
        session.send(kernel, "execute_reply", {"status": "ok"}, ident=ident)
        time.sleep(0.2)  # the reply reaches the client's queue while the loop does not run
        channel.send(session.msg("comm_msg", {"comm_id": "x", "data": {"method": "update"}}))
        start = time.perf_counter()
        msg = await pending
        return msg["msg_type"], time.perf_counter() - start
    finally:
        client.close(linger=0)
        kernel.close(linger=0)
        actx.term()
        sctx.term()


async def _wait_after_a_consumed_wakeup(timeout: float) -> tuple[str, float]:
    """Any other consumer of the FD's edge: a message arrives for a sleeping poll, and something reads
    ``zmq.EVENTS`` through a shadow of the socket, bypassing zmq.asyncio. Returns the message type and
    how long the poll took after that.
    """
    actx, sctx = zmq.asyncio.Context(), zmq.Context()
    rx = actx.socket(zmq.PAIR)
    tx = sctx.socket(zmq.PAIR)
    try:
        session = Session(key=b"")
        port = rx.bind_to_random_port("tcp://127.0.0.1")
        tx.connect(f"tcp://127.0.0.1:{port}")
        channel = AsyncZMQSocketChannel(rx, session)
        session.send(tx, "kernel_info_reply")
        await channel.get_msg(timeout=10)
        pending = asyncio.ensure_future(channel.get_msg(timeout=timeout))
        await asyncio.sleep(0.1)
        session.send(tx, "execute_reply", {"status": "ok"})
        shadow = zmq.Socket.shadow(rx.underlying)
        for _ in range(200):  # consume the signal once the message is queued
            if shadow.get(zmq.EVENTS) & zmq.POLLIN:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the message never arrived")
        start = time.perf_counter()
        msg = await pending
        return msg["msg_type"], time.perf_counter() - start
    finally:
        rx.close(linger=0)
        tx.close(linger=0)
        actx.term()
        sctx.term()


def test_reply_queued_during_a_send_waits_for_the_timeout_without_the_fix():
    kernel_poll.uninstall()
    try:
        kind, seconds = asyncio.run(_reply_queued_during_a_send(timeout=2.0))
    finally:
        kernel_poll.install()
    # the reply was queued all along, but the plain poll only finds it when its timer expires
    assert kind == "execute_reply"
    assert seconds > 1.5


def test_reply_queued_during_a_send_is_picked_up_at_once_with_the_fix():
    kernel_poll.install(slice_s=5)  # slices longer than the test: the re-check after the send does it
    try:
        kind, seconds = asyncio.run(_reply_queued_during_a_send(timeout=30.0))
    finally:
        kernel_poll.install()
    assert kind == "execute_reply"
    assert seconds < 1.0


def test_any_other_missed_wakeup_costs_at_most_a_slice():
    kernel_poll.uninstall()
    try:
        kind, plain_seconds = asyncio.run(_wait_after_a_consumed_wakeup(timeout=2.0))
    finally:
        kernel_poll.install(slice_s=0.25)
    assert kind == "execute_reply" and plain_seconds > 1.5
    assert kernel_poll.installed()
    kind, seconds = asyncio.run(_wait_after_a_consumed_wakeup(timeout=30.0))
    assert kind == "execute_reply"
    assert seconds < 0.25 + 1.0  # one slice, plus scheduling slack on a busy machine


def test_bounded_poll_still_times_out():
    kernel_poll.install(slice_s=0.1)

    async def silent(timeout):
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.PAIR)
        sock.bind_to_random_port("tcp://127.0.0.1")
        try:
            start = time.perf_counter()
            with pytest.raises(Exception) as info:
                await AsyncZMQSocketChannel(sock, Session(key=b"")).get_msg(timeout=timeout)
            return info.type.__name__, time.perf_counter() - start
        finally:
            sock.close(linger=0)
            ctx.term()

    try:
        name, seconds = asyncio.run(silent(0.6))
    finally:
        kernel_poll.install()
    assert name == "Empty"
    assert 0.55 < seconds < 2.0


def test_install_rejects_a_bad_slice():
    kernel_poll.install()
    with pytest.raises(ValueError, match="slice_s"):
        kernel_poll.install(slice_s=0)
    with pytest.raises(ValueError, match="slice_s"):
        kernel_poll.install(slice_s=True)
    assert kernel_poll.installed()


def _tiny_notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_hanging_cell_fails_at_the_timeout_naming_notebook_and_cell(tmp_path):
    path = _tiny_notebook(tmp_path / "hangs.ipynb", "x = 1", "import time\ntime.sleep(600)", "y = 2")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with pytest.raises(execute_notebook.NotebookCellTimeout) as info:
        execute_notebook.run(nb, path, timeout=3)
    seconds = time.perf_counter() - start
    message = str(info.value)
    assert str(path) in message and "cell 1 " in message and "time.sleep(600)" not in message
    assert "'import time'" in message and "timeout of 3 s" in message
    assert seconds < 40  # kernel start-up plus the 3 s, far from the cell's 600 s


def test_runner_command_line_exits_non_zero_on_a_hanging_cell(tmp_path):
    path = _tiny_notebook(tmp_path / "hangs.ipynb", "import time\ntime.sleep(600)")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "execute_notebook.py"), "--timeout", "3", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert f"FAILED: {path}: cell 0" in proc.stderr


def test_runner_rejects_a_bad_timeout(tmp_path):
    path = _tiny_notebook(tmp_path / "ok.ipynb", "x = 1")
    with pytest.raises(ValueError, match="timeout"):
        execute_notebook.run(nbformat.read(path, as_version=4), path, timeout=0)


def test_book_build_has_a_cell_timeout_that_fails_loudly():
    execute = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    assert execute["execute_notebooks"] == "force"
    assert isinstance(execute["timeout"], int) and 0 < execute["timeout"] <= 300
    assert execute["allow_errors"] is False and execute["show_tb"] is True
    assert execute_notebook.CELL_TIMEOUT_S == execute["timeout"]


def test_book_extension_installs_the_bounded_polling():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"]["kernel_poll"] == "scripts/"
    kernel_poll.uninstall()
    assert not kernel_poll.installed()
    metadata = kernel_poll.setup(app=None)  # what Sphinx calls when it loads the extension
    assert kernel_poll.installed() and metadata["parallel_read_safe"]


@pytest.mark.slow
def test_book_build_fails_on_a_hanging_cell_naming_notebook_and_cell(tmp_path):
    # a one-notebook book with the real book's execution settings (timeout shortened) and extension
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"]["kernel_poll"] == "scripts/"
    execute = {**config["execute"], "timeout": 5}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump({
        "title": "hang", "only_build_toc_files": True, "execute": execute,
        "sphinx": {"local_extensions": {"kernel_poll": str(SCRIPTS)}},
    }))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: hangs\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    _tiny_notebook(tmp_path / "hangs.ipynb", "x = 1", "import time\ntime.sleep(600)")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", str(tmp_path), "--all", "-W", "-n",
         "--keep-going"],
        capture_output=True, text=True, timeout=300,
    )
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{tmp_path / 'hangs.ipynb'}: WARNING: Executing notebook failed: CellTimeoutError" in log
    assert "after 5 seconds" in log and "time.sleep(600)" in log  # nbclient's preview of the cell
    assert seconds < 200


def test_nbval_has_a_cell_timeout(tmp_path):
    # nbval's own default is 2000 s per cell; the suite sets a limit like the build's
    import tomllib

    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    timeouts = [int(o.split("=", 1)[1]) for o in addopts.split() if o.startswith("--nbval-cell-timeout=")]
    assert timeouts and 0 < timeouts[0] <= 300
    # and a hanging cell then fails with nbval's timeout message
    path = _tiny_notebook(tmp_path / "hangs.ipynb", "import time\ntime.sleep(600)")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=3", "-p", "no:cacheprovider",
         "-q", str(path)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "Timeout of 3 seconds exceeded" in proc.stdout
