"""Background tasks a component owns: started with a name, logged when they fail, cancelled and awaited on close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class OwnedTasks:
    """A set of fire-and-forget tasks that is never fire-and-forget: the owner drains it when it closes.

    Exceptions of the `expected` types (a client's or a dependency's fault) are logged as one line; anything else
    with its traceback."""

    def __init__(self, owner: str, *, expected: tuple[type[BaseException], ...] = ()) -> None:
        self.owner = owner
        self.expected = expected
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, self.expected):
            log.info("%s task %s: %s", self.owner, task.get_name(), exc)
        else:
            log.error("%s task %s failed", self.owner, task.get_name(), exc_info=exc)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
