"""CPU time a server and its child processes spend, read with psutil.

Why: on a small machine the server under test, its worker and the load generator share the
same cores, so what each spends per webhook bounds the rates. Both sides' CPU is measured in
the same run, so tidings' CPU against the limit's shows whether a change made tidings cheaper
where the rates alone may be too noisy to.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psutil

__all__ = ["CpuSnapshot", "snapshot"]


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds of a process and of each of its descendants, at one moment."""

    leader: float
    descendants: dict[int, float]

    def since(self, before: CpuSnapshot) -> tuple[float, float]:
        """CPU seconds spent between `before` and this snapshot: (the process itself, its
        descendants). A descendant started in between counts from nothing; what one that
        exited in between spent is missing (`lost_since` says so)."""
        below = sum(
            seconds - before.descendants.get(pid, 0.0) for pid, seconds in self.descendants.items()
        )
        return self.leader - before.leader, below

    def lost_since(self, before: CpuSnapshot) -> bool:
        """Whether a descendant of `before` has exited (a worker restarted mid-run)."""
        return not before.descendants.keys() <= self.descendants.keys()


def _seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds of the process's own threads (not its children's)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def snapshot(pid: int) -> CpuSnapshot | None:
    """The CPU spent so far by `pid` and by each process below it; None if it cannot be read
    (the process is gone, or the system does not say)."""
    try:
        leader = psutil.Process(pid)
        spent = _seconds(leader)
        children = leader.children(recursive=True)
    except psutil.Error:
        return None
    below: dict[int, float] = {}
    for child in children:
        with contextlib.suppress(psutil.Error):  # a child that exited meanwhile
            below[child.pid] = _seconds(child)
    return CpuSnapshot(spent, below)
