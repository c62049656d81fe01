"""Figure 4: login as the table grows, against the original design's query by email."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ServiceResponseError
from azure.data.tables import TableClient, TableTransactionError

from shared.accounts.store import account_rows, new_user_id, partition_for_email
from tools.bench.app import App, stored_login_hash
from tools.bench.measuring import timed
from tools.bench.report import Report


def seed_accounts(table: TableClient, first: int, last: int, stored_hash: str) -> None:
    """Write accounts ``first``..``last``-1 directly, 50 per transaction, as the importer does."""
    by_partition: dict[str, list[dict[str, Any]]] = {}
    created = datetime.now(UTC)
    for number in range(first, last):
        email = f"seed{number}@example.com"
        rows = by_partition.setdefault(partition_for_email(email), [])
        rows.extend(account_rows(new_user_id(email), email, stored_hash, created))
    batches = [rows[i : i + 100] for rows in by_partition.values() for i in range(0, len(rows), 100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda batch: _write(table, batch), batches))


def _write(table: TableClient, batch: list[dict[str, Any]], attempts: int = 5) -> None:
    """One batch, again after a dropped connection (the emulator resets some under a bulk load); a batch
    that was written before its connection dropped answers that its first entity exists."""
    for attempt in range(attempts):
        try:
            table.submit_transaction([("create", row) for row in batch])
            return
        except TableTransactionError as error:
            if getattr(error, "error_code", None) == "EntityAlreadyExists" and attempt > 0:
                return
            raise
        except ServiceResponseError:
            if attempt == attempts - 1:
                raise


def growth(app: App, samples: int, sizes: tuple[int, int], report: Report) -> None:
    """Figure 4: login with 1,000 and 50,000 accounts, against the baseline's query by email."""
    stored_hash = stored_login_hash(app)
    results = {}
    seeded = 0
    for size in sizes:
        seed_accounts(app.table, seeded, size, stored_hash)
        seeded = size
        time.sleep(3)  # let the emulator settle after the bulk write
        target = f"seed{size // 2}@example.com"
        login = timed(lambda: app.login(target), samples)  # noqa: B023 - called at once

        def baseline_lookup() -> None:
            # The Mobile Services scripts: find the account by a filter on the email column.
            found = list(app.table.query_entities(f"Email eq '{target}'"))  # noqa: B023 - called at once
            if not found:
                raise RuntimeError("baseline lookup found nothing")

        baseline = timed(baseline_lookup, max(3, samples // 8), warmup=1)
        results[size] = (login, baseline)
    small, large = sizes
    ours = results[large][0].median / results[small][0].median
    theirs = results[large][1].median / results[small][1].median
    report.table(
        "4. Growth with the number of accounts",
        "Login median end to end with the table holding each number of accounts (two rows each). Beside it, "
        "the original design's lookup (a filter query on the email column, bare SDK) on the same table.",
    )
    for size in sizes:
        login, baseline = results[size]
        report.row(f"login, {size:,} accounts", login.spread())
        report.row(f"baseline lookup by email query, {size:,} accounts", baseline.spread())
    report.row(f"**login ratio {large:,} / {small:,}**", f"{ours:.3f}", "≤ 1.10", ours <= 1.10)
    report.row(f"baseline lookup ratio {large:,} / {small:,}", f"{theirs:.1f}")
