"""A ``queueTrigger``'s ``connection``, resolved as the host resolves it, and its clients.

``StorageClientProvider.cs`` and ``ClientFactory.cs`` (see the package's docstring).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.queue import ExponentialRetry, QueueServiceClient

from tools.devhost.app_settings import FunctionIndexingError, app_setting, config_key, resolve_setting_tokens
from tools.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME

#: The app setting of a binding that names no connection (``ConnectionStringNames.Storage``,
#: looked up as ``AzureWebJobsStorage``).
DEFAULT_CONNECTION = "Storage"
_CONNECTION_PREFIX = "AzureWebJobs"


def _retry_policy() -> ExponentialRetry:
    """About Azure.Core's default retry (3 retries, exponential from 0.8 s) that the host's clients use.

    azure-storage-queue's own default starts at 15 s, and would hold a poll (and shutdown) for
    a minute when storage is down.
    """
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3)


@dataclass(frozen=True)
class QueueConnection:
    """Where a binding's ``connection`` points: a connection string, or an endpoint and identity.

    ``credential``, ``client_id``, ``tenant_id``, ``client_secret`` and
    ``managed_identity_resource_id`` are the identity-based connection's optional settings.
    """

    setting: str
    connection_string: str | None = field(default=None, repr=False)
    service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    managed_identity_resource_id: str | None = None


def development_storage_connection_string(connection_string: str) -> str | None:
    """Expand ``UseDevelopmentStorage=true[;DevelopmentStorageProxyUri=...]`` to Azurite's account.

    :returns: ``None`` when ``connection_string`` is not a development storage one.
    """
    parts = {
        key.strip().lower(): value.strip()
        for key, _, value in (part.partition("=") for part in connection_string.split(";"))
        if key.strip()
    }
    if parts.get("usedevelopmentstorage", "").lower() != "true":
        return None
    proxy = parts.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
    proxy = re.sub(r":\d+$", "", proxy)
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint={proxy}:10001/{ACCOUNT_NAME};"
    )


def resolve_connection(connection: str | None, environ: Mapping[str, str]) -> QueueConnection:
    """Resolve a ``queueTrigger``'s ``connection`` from the app settings, as the host does.

    ``connection`` (``%setting%`` resolved; no value means ``Storage``) names a
    configuration section looked up as ``AzureWebJobs<connection>`` first, then
    ``<connection>`` (each also under ``ConnectionStrings__``). The section's
    value, if any, is a connection string. Otherwise its children make an
    identity-based connection: ``__accountName`` (``https://<account>.queue.
    <endpointSuffix or core.windows.net>``), else ``__queueServiceUri``, else
    ``__serviceUri``, with the token credential ``__credential``, ``__clientId``,
    ``__tenantId``, ``__clientSecret`` and ``__managedIdentityResourceId`` make.

    :raises FunctionIndexingError: no such setting, or one that names no queue endpoint.
    """
    name = resolve_setting_tokens(connection or "", environ).strip() or DEFAULT_CONNECTION
    candidates = [_CONNECTION_PREFIX + name, name]
    for candidate in candidates:
        for key in (f"ConnectionStrings:{candidate}", candidate):
            value = app_setting(environ, key)
            children = _children(environ, key)
            if value is None and not children:
                continue
            if value:
                expanded = development_storage_connection_string(value)
                return QueueConnection(setting=candidate, connection_string=expanded or value)
            return _identity_connection(candidate, children)
    raise FunctionIndexingError(
        f"Storage account connection string '{candidates[0]}' does not exist. "
        "Make sure that it is a defined App Setting."
    )


def _children(environ: Mapping[str, str], section: str) -> dict[str, str]:
    prefix = config_key(section) + ":"
    return {
        config_key(key)[len(prefix) :]: value
        for key, value in environ.items()
        if config_key(key).startswith(prefix) and value
    }


def _identity_connection(setting: str, children: Mapping[str, str]) -> QueueConnection:
    if "accountname" in children:
        suffix = children.get("endpointsuffix") or "core.windows.net"
        service_uri = f"https://{children['accountname']}.queue.{suffix}"
    elif "queueserviceuri" in children:
        service_uri = children["queueserviceuri"]
    elif "serviceuri" in children:
        service_uri = children["serviceuri"]
    else:
        raise FunctionIndexingError(
            f"The connection '{setting}' has neither a connection string nor an accountName, "
            "queueServiceUri or serviceUri."
        )
    return QueueConnection(
        setting=setting,
        service_uri=service_uri,
        credential=children.get("credential"),
        client_id=children.get("clientid"),
        tenant_id=children.get("tenantid"),
        client_secret=children.get("clientsecret"),
        managed_identity_resource_id=children.get("managedidentityresourceid"),
    )


def token_credential(connection: QueueConnection) -> Any:
    """The credential ``ClientFactory.CreateCredential`` makes of an identity-based connection.

    ``credential=managedidentity``: a managed identity (``clientId`` or
    ``managedIdentityResourceId`` for a user-assigned one); ``tenantId`` +
    ``clientId`` + ``clientSecret``: that service principal; otherwise
    ``DefaultAzureCredential`` (with ``clientId`` as its managed identity).
    """
    from azure import identity  # noqa: PLC0415 - only identity-based connections need it

    if (connection.credential or "").lower() == "managedidentity":
        if connection.managed_identity_resource_id:
            return identity.ManagedIdentityCredential(
                identity_config={"resource_id": connection.managed_identity_resource_id}
            )
        return identity.ManagedIdentityCredential(client_id=connection.client_id)
    if connection.tenant_id and connection.client_id and connection.client_secret:
        return identity.ClientSecretCredential(
            connection.tenant_id, connection.client_id, connection.client_secret
        )
    if connection.client_id:
        return identity.DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    return identity.DefaultAzureCredential()


def _transport(pool_size: int) -> RequestsTransport:
    """requests' pool keeps 10 connections a host; the workers of a listener may use more at once."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True)


def service_client(connection: QueueConnection, *, pool_size: int = 64) -> QueueServiceClient:
    """A Queue service client for ``connection``, without message encoding (see ``QueueListener``)."""
    options: dict[str, Any] = {"retry_policy": _retry_policy(), "transport": _transport(pool_size)}
    if connection.connection_string is not None:
        return QueueServiceClient.from_connection_string(connection.connection_string, **options)
    return QueueServiceClient(str(connection.service_uri), credential=token_credential(connection), **options)
