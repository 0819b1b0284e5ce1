"""A started process leaves what it built out of the collector's passes and runs the youngest
pass less often; cycles made afterwards are still collected."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc, weakref
from tidings import collector
young_before = gc.get_threshold()[0]
collector.settle()
class Node: pass
node = Node(); node.itself = node; alive = weakref.ref(node); del node
gc.collect()
print(young_before, gc.get_threshold()[0], gc.get_freeze_count() > 0, alive() is None)
"""


def test_settle_freezes_start_up_and_spaces_out_young_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, frozen, collected = done.stdout.split()
    assert (int(before), int(after)) == (700, 10_000)
    assert frozen == "True" and collected == "True"
