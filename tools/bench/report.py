"""The report ``make bench`` writes (docs/performance.md): a table per figure, and the machine it ran on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Report:
    lines: list[str]

    def row(self, figure: str, measured: str, target: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "**not met**")
        self.lines.append(f"| {figure} | {measured} | {target} | {verdict} |")

    def table(self, title: str, intro: str = "") -> None:
        self.lines += ["", f"## {title}", ""]
        if intro:
            self.lines += [intro, ""]
        self.lines += ["| figure | measured | target | |", "|---|---|---|---|"]

    def text(self, *paragraphs: str) -> None:
        for paragraph in paragraphs:
            self.lines += ["", paragraph]


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split()[1])
        memory = f", {total_kib / 1024 / 1024:.0f} GiB"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; Azurite (in memory) on the same machine"
    )
