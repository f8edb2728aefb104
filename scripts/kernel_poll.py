"""Kernel messages reach nbclient's asyncio waits at once: no finished cell sits out its timeout.

    import kernel_poll
    kernel_poll.install()      # before nbclient executes a notebook

The book build loads this module as a Sphinx extension (``_config.yml``:
``sphinx.local_extensions``), so myst-nb's execution of the chapters uses it too.

The stall. nbclient waits for a cell's ``execute_reply`` with one call,
``shell_channel.get_msg(timeout=<the rest of the cell timeout>)``, an ``await socket.poll(...)`` on a
``zmq.asyncio`` socket: it sleeps until the event loop sees the socket's ``zmq.FD`` become readable.
That descriptor is edge-triggered: any libzmq call on the socket (a send, a receive, reading
``zmq.EVENTS``) processes the socket's pending commands and clears it, and pyzmq's asyncio layer only
re-checks the socket after calls that go through it. ``jupyter_client``'s ``Session.send`` does not:
for an asyncio socket it sends through a synchronous shadow of the same libzmq socket
(``zmq.Socket.shadow(stream.underlying)``). nbclient sends on the shell socket while a cell runs
when the cell displays an ipywidgets ``Output`` widget: its ``OutputWidget`` mirrors every captured
output back to the kernel as a ``comm_msg`` (``sync_state``), from the iopub task. When the kernel's
``execute_reply`` arrives just before such a send, the send consumes its wake-up; the reply sits in
the socket's queue (``zmq.EVENTS`` has ``POLLIN``) while the poll sleeps on a descriptor that will not
fire again, until its timer expires at the end of the cell timeout; then pyzmq checks the socket with
``zmq_poll(..., 0)``, finds the reply and the run carries on as if nothing happened. Traced here
(pyzmq 27.3, jupyter_client 8.10, nbclient 0.11, ipykernel 7.4) on chapter 5's widget cell: 0.1-0.8 s
in the kernel, exactly the 30 s or 120 s cell timeout on the client, in 5 of 9 runs.

The fix, two parts, both installed by :func:`install`:

* after every ``send`` of an asyncio channel, read ``zmq.EVENTS`` through the asyncio socket, which
  processes the commands the shadow send may have left and schedules the pending poll if a message
  is waiting (a reply that arrives later signals the descriptor again);
* wait in slices: ``get_msg`` polls for at most ``slice_s`` seconds at a time, and each expiring slice
  checks the socket with ``zmq_poll``, which does not depend on the edge. Any other way of losing a
  wake-up then costs one slice, not the cell timeout.

The overall timeout is unchanged: a cell that really hangs still raises nbclient's
``CellTimeoutError`` when its timeout runs out. nbval is not affected: its ``BlockingKernelClient``
polls with ``zmq_poll`` directly.
"""

from __future__ import annotations

import time
from queue import Empty

import zmq
from jupyter_client.channels import AsyncZMQSocketChannel

SLICE_S = 0.25  # longest single wait for a kernel message, seconds

_original_get_msg = AsyncZMQSocketChannel.get_msg
_original_send = AsyncZMQSocketChannel.send


def _send_then_recheck(self, msg) -> None:
    """``AsyncZMQSocketChannel.send``, then hand any wake-up the send consumed to the pending poll."""
    _original_send(self, msg)
    sock = self.socket
    if sock is not None and not sock.closed and getattr(sock, "_state", 0):
        sock.get(zmq.EVENTS)  # zmq.asyncio's get() schedules the waiting futures when events are pending


async def _bounded_get_msg(self, timeout: float | None = None, *, slice_s: float | None = None):
    """``AsyncZMQSocketChannel.get_msg`` polled in slices of at most ``slice_s`` seconds."""
    step = SLICE_S if slice_s is None else slice_s
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = step if deadline is None else min(step, max(0.0, deadline - time.monotonic()))
        try:
            return await _original_get_msg(self, wait)
        except Empty:
            if deadline is not None and time.monotonic() >= deadline:
                raise


def install(slice_s: float = SLICE_S, *, recheck_after_send: bool = True) -> None:
    """Patch every asyncio kernel channel of this process: polls of at most ``slice_s`` seconds, and
    (unless ``recheck_after_send=False``) a re-check of the socket after each send."""
    global SLICE_S
    if isinstance(slice_s, bool) or not (isinstance(slice_s, (int, float)) and 0 < slice_s <= 5):
        raise ValueError(f"slice_s must be a number of seconds in (0, 5], got {slice_s!r}")
    SLICE_S = float(slice_s)
    AsyncZMQSocketChannel.get_msg = _bounded_get_msg
    AsyncZMQSocketChannel.send = _send_then_recheck if recheck_after_send else _original_send


def uninstall() -> None:
    """Restore jupyter_client's own ``get_msg`` and ``send`` (for tests that compare)."""
    AsyncZMQSocketChannel.get_msg = _original_get_msg
    AsyncZMQSocketChannel.send = _original_send


def installed() -> bool:
    return (AsyncZMQSocketChannel.get_msg is _bounded_get_msg
            and AsyncZMQSocketChannel.send is _send_then_recheck)


def setup(app):
    """Sphinx extension: myst-nb executes the notebooks in the Sphinx process."""
    install()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
