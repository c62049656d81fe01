"""`make run`'s supervisor: Azurite and the functions come up together and go down together."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jwt
import requests

from tests.conftest import APP_SETTINGS
from tools.azurite import PROJECT_ROOT, free_port, table_connection_string, wait_for_port


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_run_serves_until_interrupted(tmp_path: Path) -> None:
    """Settings are generated, a user registers and logs in, Ctrl-C leaves nothing running."""
    port, table_port = free_port(), free_port()
    settings = tmp_path / "local.settings.json"
    env = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS}
    # local.settings.json says UseDevelopmentStorage=true (port 10002); this run uses a free port.
    env["ACCOUNTS_STORAGE_CONNECTION"] = table_connection_string(table_port)
    command = [sys.executable, "-m", "tools.run", "--port", str(port), "--table-port", str(table_port)]
    command += ["--data", str(tmp_path / "azurite"), "--settings", str(settings)]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}/api"
        credentials = {"email": "run@example.com", "password": "correct horse battery"}
        assert requests.post(f"{url}/register", json=credentials, timeout=30).status_code == 201
        login = requests.post(f"{url}/login", json=credentials, timeout=30)
        assert login.status_code == 200
        key = bytes.fromhex(json.loads(settings.read_text())["Values"]["AUTH_SIGNING_KEY"])
        claims = jwt.decode(login.json()["token"], key, algorithms=["HS256"], options={"verify_aud": False})
        assert claims["sub"] == login.json()["userId"]
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode()
    assert b"Stopped." in output
    assert port_is_closed(port)
    assert port_is_closed(table_port)
