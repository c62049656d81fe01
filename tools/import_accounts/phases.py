"""The import's phases: validate and spool every row, then write the aliases, then the accounts.

Each phase reads the spool the one before wrote (a file per partition), so
that memory stays bounded whatever the size of the export; the writing is
whole partitions at a time (:mod:`.partitions`), in :class:`.workers.Workers`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shared.settings import StorageSettings
from tools.import_accounts.partitions import PartitionResult, SpoolWriter, account_task, alias_task
from tools.import_accounts.progress import Progress, ProgressListener
from tools.import_accounts.summary import Summary
from tools.import_accounts.workers import Workers


def import_export(
    records: Iterable[Mapping[str, Any]],
    columns: Mapping[str, str],
    storage: StorageSettings,
    *,
    workers: int,
    emails_verified: bool = False,
    dry_run: bool = False,
    show_progress: bool = True,
    on_progress: ProgressListener | None = None,
) -> Summary:
    """Validate ``records`` and write the accounts to ``storage``; say what happened in the summary.

    Imported emails are marked unverified unless ``emails_verified``.

    :raises ValueError, ijson.JSONError, csv.Error, OSError: reading the
        records failed; raised before anything is written.
    """
    summary = Summary()
    with (
        tempfile.TemporaryDirectory(prefix="import-accounts-") as folder,
        Workers(storage, workers, show_progress, on_progress) as pool,
    ):
        by_alias, by_account = Path(folder, "by-alias"), Path(folder, "by-account")
        with (
            SpoolWriter(by_alias) as spool,
            Progress("validating", None, "row", show_progress, on_progress) as bar,
        ):
            for account in pool.validate(records, columns, summary, bar):
                spool.add(account.alias_partition, account)
                summary.valid += 1
        if dry_run or not summary.valid:
            return summary
        forwarded = 0
        with SpoolWriter(by_account) as spool:

            def forward(result: PartitionResult) -> None:
                nonlocal forwarded
                for account, alias_written in result.forwarded:
                    spool.add(account.partition, account, alias_written)
                forwarded += len(result.forwarded)
                result.forwarded.clear()

            pool.run(
                "aliases",
                summary.valid,
                [(alias_task, (path.name, path), [path]) for path in sorted(by_alias.iterdir())],
                summary,
                on_result=forward,
            )
        pool.run(
            "accounts",
            forwarded,
            [
                (account_task, (path.name, [path], emails_verified), [path])
                for path in (sorted(by_account.iterdir()) if by_account.exists() else [])
            ],
            summary,
        )
    return summary
