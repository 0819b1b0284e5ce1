"""Where the processes of `tidings serve` count their metrics: one directory for all.

Kept apart from `tidings.metrics` because it must run before prometheus_client is imported,
which reads this setting once, at import.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

__all__ = ["DIRECTORY", "count_across_processes"]

DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def count_across_processes() -> None:
    """Make this process and the processes it starts count into one fresh directory, removed
    when this process exits. Must run before prometheus_client is first imported (`tidings
    serve` calls it before it imports the app)."""
    directory = tempfile.mkdtemp(prefix="tidings-metrics-")
    os.environ[DIRECTORY] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
