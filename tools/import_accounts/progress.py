"""The import's progress: a bar on stderr, and a listener told of the same counts."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm

#: Progress bars appear only for imports that last longer than this (seconds).
PROGRESS_BAR_DELAY = 0.5

#: Told of progress: the phase ("validating", "aliases" or "accounts") and how many more rows it finished.
ProgressListener = Callable[[str, int], None]


class Progress:
    """A progress bar on stderr (rate and time left), and the listener, told of the same counts."""

    def __init__(
        self, phase: str, total: int | None, unit: str, show: bool, listener: ProgressListener | None
    ) -> None:
        self.phase = phase
        self.listener = listener
        self.bar = tqdm(
            total=total, desc=phase, unit=unit, file=sys.stderr, disable=not show, delay=PROGRESS_BAR_DELAY
        )

    def update(self, count: int) -> None:
        self.bar.update(count)
        if self.listener is not None:
            self.listener(self.phase, count)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()
