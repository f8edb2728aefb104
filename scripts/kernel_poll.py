"""Wait for kernel messages in short slices, so that a missed wake-up costs a slice, not a timeout.

    import kernel_poll
    kernel_poll.install()      # before nbclient executes a notebook

The book build loads this module as a Sphinx extension (``_config.yml``:
``sphinx.local_extensions``), so myst-nb's execution of the chapters uses it too.

Why. nbclient waits for a cell's ``execute_reply`` with one call,
``shell_channel.get_msg(timeout=<the rest of the cell timeout>)``, on jupyter_client's asyncio
channel. That call is ``await socket.poll(timeout)`` on a ``zmq.asyncio`` socket, which sleeps until
the event loop sees the socket's ``zmq.FD`` become readable. That file descriptor is
edge-triggered: it signals that *something happened* on the socket, and whoever reads
``zmq.EVENTS`` (or sends or receives) consumes the signal. When the signal is consumed without the
pending poll being told, the reply sits in the socket's queue (``EVENTS & POLLIN`` is true) while
the loop sleeps on a descriptor that will not fire again; the poll returns only when its timer
expires, at the end of the cell timeout, and then finds the reply at once (pyzmq checks the socket
with ``zmq_poll(..., 0)`` when the timer fires). Measured here (pyzmq 27.3, ipykernel 7.4,
jupyter_client 8.10, nbclient 0.11): chapter 5's widget cell, 0.12 s in the kernel, took exactly
the 120 s cell timeout, with the reply queued and the poll still registered; nbclient's iopub
poll (``timeout=None``) is exposed the same way.

The fix. :func:`install` wraps ``AsyncZMQSocketChannel.get_msg`` so that a wait of any length is
a series of polls of at most ``slice_s`` seconds. Each expiring slice checks the socket with
``zmq_poll``, which does not depend on the edge, so a queued message is picked up within one slice.
The overall timeout is unchanged: a cell that really hangs still raises nbclient's
``CellTimeoutError`` when its timeout runs out.

The blocking client (nbval's ``BlockingKernelClient``) polls with ``zmq_poll`` directly and is not
affected.
"""

from __future__ import annotations

import time
from queue import Empty

from jupyter_client.channels import AsyncZMQSocketChannel

SLICE_S = 0.25  # longest single wait for a kernel message, seconds

_original_get_msg = AsyncZMQSocketChannel.get_msg


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


def install(slice_s: float = SLICE_S) -> None:
    """Make every asyncio kernel channel of this process poll in slices of ``slice_s`` seconds."""
    global SLICE_S
    if not (isinstance(slice_s, (int, float)) and 0 < slice_s <= 5):
        raise ValueError(f"slice_s must be a number of seconds in (0, 5], got {slice_s!r}")
    SLICE_S = float(slice_s)
    AsyncZMQSocketChannel.get_msg = _bounded_get_msg


def uninstall() -> None:
    """Restore jupyter_client's own ``get_msg`` (for tests that compare the two)."""
    AsyncZMQSocketChannel.get_msg = _original_get_msg


def installed() -> bool:
    return AsyncZMQSocketChannel.get_msg is _bounded_get_msg


def setup(app):
    """Sphinx extension: myst-nb executes the notebooks in the Sphinx process."""
    install()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
