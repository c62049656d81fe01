"""The bench's own tools: pinning processes to cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.azurite import Azurite
from tools.bench_pinned import pin_process, this_thread_on


def allowed_cores(pid: int) -> set[str]:
    """The Cpus_allowed_list of every thread of ``pid``."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                found.add(line.split()[1])
    return found


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_every_thread_of_a_running_process_is_pinned() -> None:
    core = max(os.sched_getaffinity(0))
    with Azurite() as azurite:
        assert len(list(Path(f"/proc/{azurite.pid}/task").iterdir())) > 1, "node runs several threads"
        assert allowed_cores(azurite.pid) != {str(core)}
        pin_process(azurite.pid, {core})
        assert allowed_cores(azurite.pid) == {str(core)}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_this_thread_is_pinned_and_restored() -> None:
    before = os.sched_getaffinity(0)
    core = min(before)
    with this_thread_on({core}):
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
