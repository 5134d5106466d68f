"""The event loop the blocking clients run on: one per process, on a daemon thread.

The asyncio clients hold the only copy of the request logic (length grouping, failover between
replicas, retries, limits, readiness, the pipeline's cascade). A blocking client hands each call to
this loop and waits for the answer, so that logic is written once, and a blocking client may be
called from several threads at once: every call runs on this one thread, where tritonclient's
asyncio clients are used as they must be (tritonclient's blocking clients are not thread-safe).

A forked child gets a loop of its own. The parent's loop is copied into it without its thread, and
with the parent's epoll instance, which fork shares: were the child to close anything of the parent's
(its connections, when collected), the parent's sockets would leave the parent's epoll and its
calls would hang. So in the child the copy is given a selector of its own first.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import selectors
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_owner_pid: int | None = None  # a forked child starts a loop of its own: the parent's thread is not there


def _detach_inherited_loop() -> None:
    """In a forked child: the parent's loop (copied, never to run here) stops sharing the parent's
    epoll instance, so that nothing closed here unregisters the parent's sockets."""
    global _loop
    inherited, _loop = _loop, None
    if inherited is not None and isinstance(getattr(inherited, "_selector", None), selectors.BaseSelector):
        inherited._selector = selectors.DefaultSelector()
        _inherited.append(inherited)  # kept: never closed nor collected here


_inherited: list[asyncio.AbstractEventLoop] = []
os.register_at_fork(after_in_child=_detach_inherited_loop)


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _loop, _owner_pid
    with _lock:
        if _loop is None or _owner_pid != os.getpid():
            loop = asyncio.new_event_loop()
            started = threading.Event()
            threading.Thread(target=_serve, args=(loop, started), name="triton-rerank-loop", daemon=True).start()
            started.wait()
            _loop, _owner_pid = loop, os.getpid()
        return _loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the shared loop and return its result (or raise its exception) here."""
    loop = _shared_loop()
    if _on(loop):  # it would wait for itself forever
        coroutine.close()
        raise RuntimeError("a blocking triton_rerank client was called on its own event loop; use the async one")
    future = asyncio.run_coroutine_threadsafe(_in_context(contextvars.copy_context(), coroutine), loop)
    try:
        return future.result()
    except BaseException:  # KeyboardInterrupt while waiting: the call stops too
        future.cancel()
        raise


async def _in_context(context: contextvars.Context, coroutine: Coroutine[Any, Any, T]) -> T:
    """``coroutine`` with the caller's context variables (its request id, its current span): a task
    on the loop's thread would otherwise start from that thread's context."""
    for variable, value in context.items():
        variable.set(value)  # in this task's own copy: the loop's thread is not changed
    return await coroutine


def close_soon(close: Callable[[], Coroutine[Any, Any, Any]], timeout_s: float = 5.0) -> None:
    """Run a clean-up coroutine (``close()``) on the shared loop, from a finalizer: wait for it (a
    bounded time) unless called on the loop's own thread, where it is only scheduled. Its errors are
    dropped: there is no caller left to tell."""
    loop = _loop
    if loop is None or _owner_pid != os.getpid() or not loop.is_running():
        return  # nothing ever ran on a loop here: nothing is open
    future = asyncio.run_coroutine_threadsafe(close(), loop)
    if not _on(loop):
        try:
            future.result(timeout_s)
        except Exception:  # noqa: S110 - a finalizer has no one to report to
            pass


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this thread is the one running ``loop``."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs in this thread: the usual case
        return False
