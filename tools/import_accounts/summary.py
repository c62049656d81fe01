"""What an import did, row by row where it matters: the summary the command prints, and its exit status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from tools.import_accounts.partitions import PartitionResult


@dataclass
class Summary:
    """What an import did, row by row where it matters."""

    valid: int = 0
    imported: int = 0
    already_imported: int = 0
    email_taken: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def skipped_as_duplicate(self) -> int:
        return self.already_imported + len(self.email_taken)

    def add(self, result: PartitionResult) -> None:
        self.imported += result.imported
        self.already_imported += result.already_imported
        self.email_taken += result.email_taken
        self.rejected += result.rejected
        self.failed += result.failed

    def exit_status(self) -> int:
        if self.failed:
            return 2
        return 1 if self.rejected else 0

    def write(self, out: TextIO, *, dry_run: bool = False) -> None:
        for rows in (self.email_taken, self.rejected, self.failed):
            rows.sort()
        if dry_run:
            out.write(f"valid, to import or already there (dry run, nothing written): {self.valid}\n")
        else:
            out.write(f"imported: {self.imported}\n")
            out.write(
                f"skipped as duplicate: {self.skipped_as_duplicate} (already imported: "
                f"{self.already_imported}, email has another account: {len(self.email_taken)})\n"
            )
            for row, reason in self.email_taken:
                out.write(f"  row {row}: {reason}\n")
        out.write(f"rejected: {len(self.rejected)}\n")
        for row, reason in self.rejected:
            out.write(f"  row {row}: {reason}\n")
        if self.failed:
            out.write(f"failed, not written (re-run to complete): {len(self.failed)}\n")
            for row, reason in self.failed:
                out.write(f"  row {row}: {reason}\n")
