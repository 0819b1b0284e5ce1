"""One `tidings serve` per SQLite file: a second one would fight the first for the write lock
and run a second worker on the same inbox, so it is refused with the holder's pid. Commands
that must have the file to themselves (`vacuum`, `migrate-data`'s source) take the same lock:
they are refused while `serve` runs, and `serve` is refused while they do.

The lock is an fcntl lock on `<database>.serve.lock`, held for the life of the process: the
kernel releases it when the process dies, however it dies, so a stale file never blocks.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from tidings.domain.errors import TidingsError

__all__ = ["AlreadyServing", "ServeLock"]


class AlreadyServing(TidingsError):
    """Another process serves the same SQLite file."""


class ServeLock:
    def __init__(self, database: Path, holder: str = "serve") -> None:
        self.database = database
        self.holder = holder  # the command that takes it, named to whoever is refused
        self.path = database.with_name(database.name + ".serve.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyServing naming the process that holds it."""
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            pid, _, command = handle.read().strip().partition(" ")
            handle.close()
            raise AlreadyServing(
                f"another tidings {command or 'serve'} (pid {pid or 'unknown'}) already "
                f"{'serves' if command in ('', 'serve') else 'uses'} {self.database} "
                f"(lock {self.path}); stop it first, or point TIDINGS_DATABASE_URL elsewhere"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {self.holder}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
