"""Storage clients read the proxy settings once, when built, as ``requests`` reads them (NO_PROXY too)."""

from __future__ import annotations

import os
import secrets

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient

from shared.settings import StorageSettings
from shared.storage import new_table_client
from tools.emulators.azurite import Azurite, free_port


def settings(azurite: Azurite) -> StorageSettings:
    return StorageSettings("Proxy" + secrets.token_hex(4), connection_string=azurite.connection_string)


def transport_of(client: TableClient) -> RequestsTransport:
    """The transport ``requests`` is driven by (what is handed to it)."""
    transport = client._client._client._pipeline._transport
    assert isinstance(transport, RequestsTransport)
    return transport


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


def test_an_https_endpoint_verifies_with_the_named_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE: what an https endpoint's certificate is checked with."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    account = "AccountName=bench;AccountKey=" + "A" * 88 + ";EndpointSuffix=core.windows.net"
    with new_table_client(
        StorageSettings("Accounts", connection_string="DefaultEndpointsProtocol=https;" + account)
    ) as client:
        assert transport_of(client).connection_config.verify == "/etc/ssl/certs/ca-certificates.crt"
    with new_table_client(
        StorageSettings("Accounts", connection_string="DefaultEndpointsProtocol=http;" + account)
    ) as client:
        assert transport_of(client).connection_config.verify is True
