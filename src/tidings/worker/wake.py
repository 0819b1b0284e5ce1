"""How work is woken: `Wakeable` is anything told "there are receipts to apply" (the intake
after a commit, a job that released retries); `WakeEvent` is what a worker thread sleeps on
until it is told."""

from __future__ import annotations

from typing import Protocol

__all__ = ["WakeEvent", "Wakeable"]


class Wakeable(Protocol):
    """Applies pending receipts soon after `wake()`: the worker thread, the worker child
    process, the broker that reaches the Celery workers. `wake()` never blocks."""

    def wake(self) -> None: ...


class WakeEvent(Protocol):
    """What a worker thread waits on: `threading.Event` when the waker shares its process, a
    pipe (`PipeWakeEvent`) when the waker is the parent of a worker child process."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
