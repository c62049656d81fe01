"""The importer at scale: worker processes over many partitions, and imports that stop half-way.

Each import runs as an operator runs it (``python -m tools.import_accounts`` in
its own process group, settings from the environment). A stopped import is
stopped for real: a worker process killed, Ctrl-C sent to the process group,
or storage shut down under it. Afterwards no account may be half-written, and
running the same command again must complete the import.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.accounts.store import alias_keys, partition_for_email
from tests.accounts.test_migration import export_row, log_in
from tests.conftest import AppEnvironment, app_settings_for, reset_app_caches
from tools.children import preexec
from tools.emulators.azurite import PROJECT_ROOT, Azurite

#: Rows whose passwords are known, spread through the file, for sampled logins.
SAMPLED = (0, 1_234, 2_999, 4_567, 5_999)


def export(path: Path, count: int, *, known: tuple[int, ...] = ()) -> Path:
    """A JSON export of ``count`` accounts; the rows in ``known`` have the password ``old password <n>``."""
    rows = [
        export_row(i, f"user{i}@scale.example.com", _password(i) if i in known else None)
        for i in range(count)
    ]
    path.write_text(json.dumps(rows))
    return path


def _password(index: int) -> str:
    return f"old password {index}"


def start_import(*args: str) -> subprocess.Popen[str]:
    """The importer in a process group of its own (as from a terminal), with settings from the environment.

    It starts with SIGINT at its default, as from a terminal, even when the suite
    itself was started with SIGINT ignored (a background job of a script).
    """
    return subprocess.Popen(
        [sys.executable, "-m", "tools.import_accounts", *args, "--settings", "/nonexistent"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=preexec(),  # noqa: PLW1509 - only system calls
    )


def finish(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def run_import(*args: str) -> tuple[int, str, str]:
    return finish(start_import(*args))


def rows(table: TableClient) -> list[dict[str, Any]]:
    return list(table.list_entities(select=["PartitionKey", "RowKey", "UserId", "Email", "AccountPartition"]))


def wait_for_accounts(table: TableClient, at_least: int, process: subprocess.Popen[str]) -> None:
    """Wait until the import has written ``at_least`` accounts (it must still be running then)."""
    query = "RowKey ge 'email:' and RowKey lt 'email;'"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the import finished before it could be stopped: make it bigger"
        with contextlib.suppress(ResourceNotFoundError):  # the table may not exist yet
            if sum(1 for _ in table.query_entities(query, select=["RowKey"])) >= at_least:
                return
        time.sleep(0.5)
    raise TimeoutError("the import wrote too few accounts")


def check_whole(table: TableClient) -> dict[str, str]:
    """Assert that every account is whole; return each imported email's user id.

    Whole: its login row and account row both exist, in the partition of its
    email, naming each other, and its alias row points at them. An alias
    without an account is allowed (the next run completes it); nothing else is.
    """
    logins: dict[tuple[str, str], str] = {}
    accounts: dict[tuple[str, str], str] = {}
    aliases: dict[str, tuple[str, str]] = {}
    for entity in rows(table):
        key = entity["RowKey"]
        if key.startswith("email:"):
            logins[(entity["PartitionKey"], entity["UserId"])] = entity["Email"]
        elif entity["PartitionKey"].startswith("alias-"):
            aliases[entity["UserId"]] = (entity["Email"], entity["AccountPartition"])
            assert (entity["PartitionKey"], key) == alias_keys(entity["UserId"])
        elif key.startswith("user:"):
            accounts[(entity["PartitionKey"], key.removeprefix("user:"))] = entity["Email"]
    assert logins == accounts, "every login row has its account row and no account row is alone"
    for (partition, user_id), email in logins.items():
        assert partition == partition_for_email(email)
        assert aliases[user_id] == (email, partition), "every account has its alias"
    users = Counter(user_id for _, user_id in logins)
    assert all(count == 1 for count in users.values()), "no user id is written twice"
    return {email: user_id for (_, user_id), email in logins.items()}


def worker_processes(pid: int) -> list[int]:
    """The importer's worker processes (not multiprocessing's resource tracker)."""
    workers = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command:
                workers.append(int(child))
    return workers


@pytest.fixture
def table(app_env: AppEnvironment) -> TableClient:
    return app_env.table()


class TestParallelImport:
    def test_several_workers_and_partitions_every_account_once_and_sampled_logins(
        self, app_env: AppEnvironment, table: TableClient, tmp_path: Path
    ) -> None:
        count = 6_000
        path = export(tmp_path / "export.json", count, known=SAMPLED)
        status, out, err = run_import(str(path), "--workers", "3")
        assert status == 0, out + err
        assert f"imported: {count}\n" in out
        assert "accounts" in err, "the progress bar of the writing phase is on stderr"
        imported = check_whole(table)
        assert len(imported) == count
        assert len(rows(table)) == 3 * count, "three rows per account, none written twice"
        for index in SAMPLED:
            response = log_in(f"user{index}@scale.example.com", _password(index))
            assert response.status_code == 200
            assert json.loads(response.get_body())["userId"] == f"Custom:{index}"

        status, out, err = run_import(str(path), "--workers", "2")
        assert status == 0, out + err
        assert "imported: 0\n" in out
        assert f"already imported: {count}," in out
        assert len(rows(table)) == 3 * count

    def test_dry_run_validates_and_reports_but_writes_nothing(
        self, app_env: AppEnvironment, table: TableClient, tmp_path: Path
    ) -> None:
        good = [export_row(i, f"dry{i}@example.com") for i in range(300)]
        path = tmp_path / "dry.json"
        path.write_text(json.dumps([*good, export_row(9_999, "not an email"), good[0]]))
        status, out, _ = run_import(str(path), "--dry-run")
        assert status == 1, out
        assert "valid, to import or already there (dry run, nothing written): 300" in out
        assert "row 301: invalid email" in out
        assert "row 302: duplicate email (first seen in row 1)" in out
        assert "imported:" not in out
        assert app_env.entities() == []

    @pytest.mark.parametrize(
        "content",
        ['{"id": 1}', '[{"id": 1, "email": "a@example.com"}, {"id": 2,'],
        ids=["not-an-array", "cut-off"],
    )
    def test_unreadable_file_writes_nothing(
        self, app_env: AppEnvironment, tmp_path: Path, content: str
    ) -> None:
        good = json.dumps([export_row(i, f"early{i}@example.com") for i in range(500)])
        path = tmp_path / "bad.json"
        path.write_text(good[:-1] + "," + content if content.startswith("[") else content)
        status, _, err = run_import(str(path))
        assert status == 2
        assert "cannot read" in err
        assert "nothing was written" in err
        assert app_env.entities() == []


class TestStoppedImport:
    """Stopped half-way, the import leaves whole accounts only, and the same command completes it."""

    COUNT = 10_000

    def stop_and_resume(
        self,
        table: TableClient,
        tmp_path: Path,
        stop: Callable[[subprocess.Popen[str]], None],
        after_stop: Callable[[], object] = lambda: None,
    ) -> str:
        """Stop an import with ``stop`` once it has written some accounts; check; re-run; check.

        :returns: what the stopped import wrote to stderr.
        """
        path = export(tmp_path / "export.json", self.COUNT, known=SAMPLED)
        process = start_import(str(path), "--workers", "2")
        try:
            wait_for_accounts(table, 1_500, process)
            stop(process)
            status, out, err = finish(process, timeout=180)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            after_stop()
        assert status == 2, out + err
        assert "failed, not written (re-run to complete)" in out
        stopped_err = err
        written = check_whole(table)
        assert 0 < len(written) < self.COUNT, "stopped part-way"

        status, out, err = run_import(str(path), "--workers", "2")
        assert status == 0, out + err
        imported = int(out.split("imported: ")[1].split("\n")[0])
        already = int(out.split("already imported: ")[1].split(",")[0])
        assert already == len(written)
        assert imported + already == self.COUNT
        assert len(check_whole(table)) == self.COUNT
        assert len(rows(table)) == 3 * self.COUNT
        for index in SAMPLED:
            assert log_in(f"user{index}@scale.example.com", _password(index)).status_code == 200
        return stopped_err

    def test_a_killed_worker(self, app_env: AppEnvironment, table: TableClient, tmp_path: Path) -> None:
        def kill_a_worker(process: subprocess.Popen[str]) -> None:
            workers = worker_processes(process.pid)
            assert workers, "the import runs worker processes"
            os.kill(workers[0], signal.SIGKILL)

        self.stop_and_resume(table, tmp_path, kill_a_worker)

    def test_ctrl_c(self, app_env: AppEnvironment, table: TableClient, tmp_path: Path) -> None:
        def press_ctrl_c(process: subprocess.Popen[str]) -> None:
            os.killpg(process.pid, signal.SIGINT)  # a terminal sends it to the whole process group

        err = self.stop_and_resume(table, tmp_path, press_ctrl_c)
        assert "stopping: the partitions in progress finish first" in err

    def test_storage_going_away(
        self, own_azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name, value in app_settings_for(own_azurite.connection_string).items():
            monkeypatch.setenv(name, value)
        reset_app_caches()
        table = TableClient.from_connection_string(
            own_azurite.connection_string, os.environ["ACCOUNTS_TABLE"]
        )

        def stop_storage(process: subprocess.Popen[str]) -> None:
            own_azurite.stop()  # until the import gives up (in bounded time) and reports

        self.stop_and_resume(table, tmp_path, stop_storage, after_stop=own_azurite.start)
        reset_app_caches()
