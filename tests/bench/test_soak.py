"""A short soak (make soak runs minutes): mixed traffic, a storage restart, the cleanup, then a full check."""

from __future__ import annotations

from tools.bench.soak import run_soak


def test_soak_with_a_storage_restart() -> None:
    report = run_soak(seconds=20, clients=4)
    assert report.restarts == 1
    assert len(report.registered) > 20, report.summary()
    assert any(key.endswith((" 503", " 0")) for key in report.statuses), "the restart was felt"
    assert report.server_errors == 0, report.summary()
    assert report.unreachable_accounts == [], report.summary()
    assert report.phantom_accounts == [], report.summary()
    assert report.attempt_counters > 20, "the per-address limits counted the clients' addresses"
    assert report.table_flat, "the cleanup keeps the other rows from growing: " + report.summary()
