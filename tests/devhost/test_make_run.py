"""`make run`'s supervisor: Azurite, the mail catcher and the functions come up and go down together."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from tests.conftest import APP_SETTINGS
from tests.devhost.test_children import wait_until_gone
from tools.children import preexec
from tools.devhost.local_settings import add_missing_settings, create_local_settings
from tools.emulators.azurite import PROJECT_ROOT, Azurite, free_port, table_connection_string
from tools.emulators.maildev import MailDev, PortInUse
from tools.run import host_environment

INBOX_LINE = re.compile(r"Mail inbox: (http://\S+)")
#: What a settings file written before mail existed looks like (with the developer's own choices).
OLD_VALUES = {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AUTH_SIGNING_KEY": "ab" * 32,
    "AUTH_TOKEN_FORMAT": "zumo",
    "ACCOUNTS_TABLE": "Accounts",
    "AUTH_APP_NAME": "Contoso Notes",
}


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Run:
    """``python -m tools.run`` on free ports, its output going to a file (a pipe read late fills up)."""

    process: subprocess.Popen[bytes]
    log: Path
    settings: Path
    port: int
    table_port: int
    smtp_port: int
    inbox_port: int

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def inbox_url(self, timeout: float = 60) -> str:
        """The URL the supervisor printed for the mail inbox, once it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = INBOX_LINE.search(self.output)
            if found:
                return found.group(1)
            assert self.process.poll() is None, f"tools.run exited early:\n{self.output}"
            time.sleep(0.1)
        raise AssertionError(f"no mail inbox URL within {timeout} s:\n{self.output}")

    def wait_for_functions(self, timeout: float = 60) -> None:
        """Block until the functions host accepts connections; fail with the output if it cannot."""
        deadline = time.monotonic() + timeout
        while port_is_closed(self.port):
            assert self.process.poll() is None, f"tools.run exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"no functions in {timeout} s:\n{self.output}"
            time.sleep(0.1)

    def stop(self, how: str) -> str:
        """Stop it as a terminal's Ctrl-C (SIGINT to the group) or an IDE (SIGTERM to it) would."""
        if how == "ctrl-c":
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return self.output

    def assert_all_stopped(self) -> None:
        for port in (self.port, self.table_port, self.smtp_port, self.inbox_port):
            assert port_is_closed(port), f"port {port} still open:\n{self.output}"


def start_run(tmp_path: Path) -> Run:
    port, table_port, smtp_port, inbox_port = free_port(), free_port(), free_port(), free_port()
    settings = tmp_path / "local.settings.json"
    env = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS}
    # local.settings.json says UseDevelopmentStorage=true (port 10002); this run uses a free port.
    env["ACCOUNTS_STORAGE_CONNECTION"] = table_connection_string(table_port)
    command = [sys.executable, "-m", "tools.run", "--port", str(port), "--table-port", str(table_port)]
    command += ["--data", str(tmp_path / "azurite"), "--settings", str(settings)]
    command += ["--smtp-port", str(smtp_port), "--inbox-port", str(inbox_port)]
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=preexec(),  # noqa: PLW1509 - SIGINT at its default, as from a terminal
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Run(process, log, settings, port, table_port, smtp_port, inbox_port)


def test_run_serves_until_interrupted(tmp_path: Path) -> None:
    """Settings are generated, a user registers, logs in and gets a reset mail; Ctrl-C stops everything."""
    run = start_run(tmp_path)
    try:
        run.wait_for_functions()
        url = f"http://127.0.0.1:{run.port}/api"
        credentials = {"email": "run@example.com", "password": "correct horse battery"}
        assert requests.post(f"{url}/register", json=credentials, timeout=30).status_code == 201
        login = requests.post(f"{url}/login", json=credentials, timeout=30)
        assert login.status_code == 200
        key = bytes.fromhex(json.loads(run.settings.read_text())["Values"]["AUTH_SIGNING_KEY"])
        claims = jwt.decode(login.json()["token"], key, algorithms=["HS256"], options={"verify_aud": False})
        assert claims["sub"] == login.json()["userId"]
        # A reset mail shows up in the local inbox, sent by the queue-triggered mail function.
        forgot = requests.post(f"{url}/password/forgot", json={"email": "run@example.com"}, timeout=30)
        assert forgot.status_code == 202
        inbox_url = f"http://127.0.0.1:{run.inbox_port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            subjects = [mail["subject"] for mail in emails(inbox_url)]
            if any("reset" in subject.lower() for subject in subjects):
                break
            time.sleep(0.2)
        assert any("reset" in subject.lower() for subject in subjects), subjects
    finally:
        output = run.stop("ctrl-c")  # what Ctrl-C in a terminal does
    assert run.process.returncode == 0, output
    assert "Stopped." in output
    assert "cleanup: timerTrigger" in output, "the cleanup runs on its schedule (AUTH_CLEANUP_SCHEDULE)"
    assert "Running timers for 1 functions" in output
    assert "is in error" not in output, output
    run.assert_all_stopped()


def emails(inbox_url: str) -> list[dict[str, Any]]:
    """Every message MailDev holds, from its REST API (MailDev 2: ``/email``)."""
    response = requests.get(f"{inbox_url}/email", timeout=10)
    assert response.status_code == 200
    listed: list[dict[str, Any]] = response.json()
    return listed


def test_run_starts_a_mail_catcher_and_stops_it_on_sigterm(tmp_path: Path) -> None:
    """The printed inbox answers, its SMTP port takes a real message the inbox lists; SIGTERM stops all."""
    run = start_run(tmp_path)
    try:
        inbox_url = run.inbox_url()
        assert inbox_url == f"http://127.0.0.1:{run.inbox_port}"
        # The inbox page, as a browser asks for it.
        page = requests.get(inbox_url, headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200
        assert "text/html" in page.headers["Content-Type"]

        message = EmailMessage()
        message["From"] = "no-reply@example.com"
        message["To"] = "alice@example.com"
        message["Subject"] = "Your code is 12345678"
        message.set_content("12345678\n")
        with smtplib.SMTP("127.0.0.1", run.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)
        deadline = time.monotonic() + 10
        while not (listed := emails(inbox_url)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [mail["subject"] for mail in listed] == ["Your code is 12345678"]
        assert [to["address"] for to in listed[0]["to"]] == ["alice@example.com"]
        run.wait_for_functions()  # the functions came up beside it
    finally:
        output = run.stop("sigterm")  # what an IDE's stop button does
    assert run.process.returncode == 0, output
    assert "Stopped." in output
    run.assert_all_stopped()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found += [child, *descendants(child)]
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, waits on pidfds")
def test_a_killed_runner_leaves_nothing_running(tmp_path: Path) -> None:
    """SIGKILL of the runner alone (no clean-up runs): Azurite, MailDev, the host, the watchdog all exit."""
    run = start_run(tmp_path)
    left: set[int] = set()
    try:
        run.inbox_url()
        run.wait_for_functions()
        children = descendants(run.process.pid)
        assert len(children) >= 4, "Azurite, MailDev, the host and the watchdog"
        run.process.kill()  # the runner only, not its group: nothing of its own clean-up runs
        run.process.wait()
        left = wait_until_gone(children, timeout=60)
        assert left == set(), f"still running: {left}\n{run.output}"
        run.assert_all_stopped()
    finally:
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()


def test_mail_catcher_refuses_a_taken_port() -> None:
    """A port already in use (another make run, say) is an error naming it, not a silent second inbox."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        maildev = MailDev(smtp_port=port)
        with pytest.raises(PortInUse, match=str(port)):
            maildev.start()
        assert maildev.process is None


def test_host_points_mail_and_queue_at_what_run_started(tmp_path: Path) -> None:
    """Loopback SMTP goes to the catcher's port; Azurite on other ports replaces UseDevelopmentStorage."""
    settings = tmp_path / "local.settings.json"
    create_local_settings(settings)
    maildev, azurite = MailDev(smtp_port=2525, web_port=8025), Azurite(table_port=free_port())
    environment = host_environment(settings, {"PATH": "/bin"}, maildev=maildev, azurite=azurite)
    assert environment["AUTH_MAIL_SMTP_PORT"] == "2525"
    assert environment["AzureWebJobsStorage"] == azurite.storage_connection_string
    assert f"QueueEndpoint=http://127.0.0.1:{azurite.queue_port}/" in environment["AzureWebJobsStorage"]
    assert environment["PATH"] == "/bin"

    # A real relay and the default Azurite ports: the settings file stands as written.
    values = json.loads(settings.read_text())
    values["Values"]["AUTH_MAIL_SMTP_HOST"] = "smtp.example.com"
    settings.write_text(json.dumps(values))
    environment = host_environment(settings, {}, maildev=maildev, azurite=Azurite(table_port=10002))
    assert environment == {}


def test_old_settings_file_gets_the_mail_settings_it_lacks(tmp_path: Path) -> None:
    """A local.settings.json from before mail gains the example's mail values; none of its own change."""
    target = tmp_path / "local.settings.json"
    old = {"IsEncrypted": False, "Values": OLD_VALUES, "Host": {"LocalHttpPort": 7071}}
    target.write_text(json.dumps(old))
    target.chmod(0o600)
    example = json.loads((PROJECT_ROOT / "local.settings.json.example").read_text())["Values"]

    added = add_missing_settings(target)

    document = json.loads(target.read_text())
    values = document["Values"]
    assert set(added) == {
        "AUTH_MAIL_QUEUE",
        "AUTH_MAIL_SMTP_HOST",
        "AUTH_MAIL_SMTP_PORT",
        "AUTH_MAIL_SMTP_SECURITY",
        "AUTH_MAIL_FROM",
        "AUTH_PUBLIC_BASE_URL",
        "AUTH_ENCRYPTION_KEY",
        "AUTH_SIGNING_PRIVATE_KEY",
        "AUTH_CLEANUP_SCHEDULE",
    }
    from_example = set(added) - {"AUTH_ENCRYPTION_KEY", "AUTH_SIGNING_PRIVATE_KEY"}
    assert {name: values[name] for name in from_example} == {name: example[name] for name in from_example}
    assert re.fullmatch(r"[0-9a-f]{64}", values["AUTH_ENCRYPTION_KEY"]), "a key of its own, not the example's"
    assert values["AUTH_SIGNING_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----"), (
        "an ES256 key of its own"
    )
    assert values["AUTH_MAIL_SMTP_HOST"] == "127.0.0.1"
    assert values["AUTH_MAIL_SMTP_SECURITY"] == "none"
    assert {name: values[name] for name in OLD_VALUES} == OLD_VALUES, "the developer's values stay"
    assert document["Host"] == {"LocalHttpPort": 7071}
    assert target.stat().st_mode & 0o777 == 0o600, "still readable by its owner only (it holds the key)"
    assert [path.name for path in tmp_path.iterdir()] == ["local.settings.json"]

    before = target.read_text()
    assert add_missing_settings(target) == [], "a second run has nothing to add"
    assert target.read_text() == before


@pytest.mark.parametrize(
    "transport",
    [
        {"AUTH_MAIL_SMTP_HOST": "smtp.example.com", "AUTH_MAIL_SMTP_USERNAME": "app"},
        {"AUTH_MAIL_ACS_ENDPOINT": "https://acs.unitedstates.communication.azure.com"},
        {"AUTH_MAIL_SMTP_HOST": ""},
    ],
)
def test_a_chosen_transport_gets_no_catcher_settings(tmp_path: Path, transport: dict[str, str]) -> None:
    """A file naming its own transport (even an empty one) never gains the catcher's host, port, security."""
    target = tmp_path / "local.settings.json"
    target.write_text(json.dumps({"Values": OLD_VALUES | transport}))

    added = add_missing_settings(target)

    values = json.loads(target.read_text())["Values"]
    assert set(added) == {
        "AUTH_MAIL_QUEUE",
        "AUTH_MAIL_FROM",
        "AUTH_PUBLIC_BASE_URL",
        "AUTH_ENCRYPTION_KEY",
        "AUTH_SIGNING_PRIVATE_KEY",
        "AUTH_CLEANUP_SCHEDULE",
    }
    assert values == OLD_VALUES | transport | {name: values[name] for name in added}
    assert "AUTH_MAIL_SMTP_SECURITY" not in values
