"""CPU time a server and its child processes spend, read from Linux's /proc.

Why: on a small machine the server under test, its worker and the load generator share the
same cores, so what each spends per webhook bounds the rates. Rates drift with the machine's
other load from one run to the next; CPU time per webhook drifts far less, so it shows whether
a change made tidings cheaper even when its rates are too noisy to. Elsewhere than Linux
nothing is measured (None), and the bench says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuSnapshot", "snapshot"]

PROC = Path("/proc")


def _ticks_per_second() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100


_TICKS = _ticks_per_second()


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and
    parentheses), or None when the process is gone or there is no /proc."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of one process, all its threads; None if unknown."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid`: its children, theirs, and so on."""
    children: dict[int, list[int]] = {}
    try:
        entries = [entry.name for entry in PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
    for name in entries:
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


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


def snapshot(pid: int) -> CpuSnapshot | None:
    """The CPU spent so far by `pid` and by each process below it; None without /proc."""
    leader = _cpu_seconds(pid)
    if leader is None:
        return None
    below: dict[int, float] = {}
    for child in _descendants(pid):
        seconds = _cpu_seconds(child)
        if seconds is not None:
            below[child] = seconds
    return CpuSnapshot(leader, below)
