"""Work on other threads, seen from the reactor: run a blocking call on an executor and
await it; hear of a future's end on the reactor thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet import reactor as _reactor

T = TypeVar("T")
reactor: Any = _reactor


async def in_thread(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on one of `executor`'s threads; the result arrives on the reactor."""
    result: defer.Deferred[T] = defer.Deferred()

    def done(future: Future[T]) -> None:
        if future.cancelled():  # its executor was shut down first
            reactor.callFromThread(result.cancel)
            return
        error = future.exception()
        if error is not None:
            reactor.callFromThread(result.errback, error)
        else:
            reactor.callFromThread(result.callback, future.result())

    executor.submit(fn, *args).add_done_callback(done)
    return await result


def on_reactor_when_done(future: Future[Any], callback: Callable[[], None]) -> None:
    """Call `callback()` on the reactor thread once `future` has finished."""
    future.add_done_callback(lambda _: reactor.callFromThread(callback))
