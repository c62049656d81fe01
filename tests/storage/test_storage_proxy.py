"""Storage clients read the proxy settings once, when built, as ``requests`` reads them (NO_PROXY too).

A client whose endpoint the environment sends through a proxy is built on azure-core's ``requests``
transport; any other on the project's own (:mod:`shared.storage.transport`), without ``requests``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.settings import StorageSettings
from shared.storage import new_table_client
from tools.emulators.azurite import PROJECT_ROOT, Azurite, free_port


def settings(azurite: Azurite) -> StorageSettings:
    return StorageSettings("Proxy" + secrets.token_hex(4), connection_string=azurite.connection_string)


def test_a_proxy_named_in_the_environment_is_used(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY on a port that refuses connections: the client fails (it went to the proxy), in bounds."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = new_table_client(settings(azurite))
    with client, pytest.raises(ServiceRequestError):
        client.create_table()


def test_no_proxy_is_honoured_and_read_once(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY naming the storage host bypasses the proxy; changing the environment later changes nothing."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = new_table_client(settings(azurite))
    monkeypatch.delenv("NO_PROXY")  # decided when the client was built
    with client:
        client.create_table()
        client.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
        assert client.get_entity("p", "r")["RowKey"] == "r"


def test_a_plain_http_endpoint_asks_the_file_system_nothing_per_call(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a CA bundle named, a call to Azurite (http) looks up no path: the bundle is for https only."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs")
    client = new_table_client(settings(azurite))
    looked_up: list[str] = []
    real_isdir = os.path.isdir

    def isdir(path: str) -> bool:
        looked_up.append(path)
        return real_isdir(path)

    with client:
        client.create_table()
        monkeypatch.setattr(os.path, "isdir", isdir)
        for _ in range(3):
            client.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
        assert looked_up == []


def test_without_a_proxy_variable_requests_is_never_imported(azurite: Azurite) -> None:
    """No proxy in the environment: a client's calls go out without importing ``requests`` at all."""
    script = (
        "import sys\n"
        "from shared.settings import StorageSettings\n"
        "from shared.storage import new_table_client\n"
        f"settings = StorageSettings('NoProxy', connection_string={azurite.connection_string!r})\n"
        "client = new_table_client(settings)\n"
        "client.create_table(); client.upsert_entity({'PartitionKey': 'p', 'RowKey': 'r'})\n"
        "print('requests' in sys.modules, 'urllib3' in sys.modules)\n"
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert ran.stdout.split() == ["False", "False"]
