"""Deployment files: identity-based storage, and infrastructure that sets what the code reads.

No Bicep compiler can be installed from the package registries this project's CI reaches, so
these tests check what can be checked without one: well-formed JSON and YAML, and that the
Bicep sets every app setting production needs, only settings the code knows, the signing key
from Key Vault, and the table role the identity-based client needs.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableClient

from shared.errors import SettingError
from shared.settings import load_settings, load_storage_settings
from shared.storage import new_table_client
from tools.azurite import PROJECT_ROOT

INFRA = PROJECT_ROOT / "infra"
BICEP = (INFRA / "main.bicep").read_text()
KEY = "ab" * 32


def settings_read_by_the_code() -> set[str]:
    """Every AUTH_* and ACCOUNTS_* name that shared/settings.py reads."""
    source = (PROJECT_ROOT / "shared" / "settings.py").read_text()
    return set(re.findall(r'"((?:AUTH|ACCOUNTS)_[A-Z0-9_]+)"', source))


def bicep_app_settings() -> dict[str, str]:
    block = BICEP.split("resource settings 'config'", 1)[1].split("dependsOn", 1)[0]
    return dict(re.findall(r"^\s+([A-Za-z_]+): (.+)$", block, re.MULTILINE)[1:])


class TestIdentityBasedStorage:
    """ACCOUNTS_TABLE_ENDPOINT selects DefaultAzureCredential; connection strings stay for Azurite."""

    def test_endpoint_selects_identity(self) -> None:
        settings = load_storage_settings(
            {"ACCOUNTS_TABLE_ENDPOINT": "https://acct.table.core.windows.net/", "AzureWebJobsStorage": "x"}
        )
        assert settings.uses_identity
        assert settings.endpoint == "https://acct.table.core.windows.net"
        assert settings.connection_string is None

    def test_connection_string_without_endpoint(self) -> None:
        settings = load_storage_settings({"ACCOUNTS_STORAGE_CONNECTION": "UseDevelopmentStorage=true"})
        assert not settings.uses_identity
        assert settings.connection_string == "UseDevelopmentStorage=true"

    def test_identity_client_uses_default_azure_credential(self) -> None:
        """The client is built (no request sent) with DefaultAzureCredential against the endpoint."""
        from azure.identity import DefaultAzureCredential

        settings = load_storage_settings({"ACCOUNTS_TABLE_ENDPOINT": "https://acct.table.core.windows.net"})
        client = new_table_client(settings)
        assert isinstance(client, TableClient)
        assert client.url.startswith("https://acct.table.core.windows.net")
        assert isinstance(client.credential, DefaultAzureCredential)

    def test_connection_string_client_uses_the_account_key(self, azurite: object) -> None:
        settings = load_storage_settings({"ACCOUNTS_STORAGE_CONNECTION": "UseDevelopmentStorage=true"})
        client = new_table_client(settings)
        assert client.url.startswith("http://127.0.0.1:10002/devstoreaccount1")
        assert isinstance(client.credential, AzureNamedKeyCredential)
        assert client.credential.named_key.name == "devstoreaccount1"

    @pytest.mark.parametrize(
        "endpoint", ["acct.table.core.windows.net", "ftp://acct/", "http://acct.table.core.windows.net"]
    )
    def test_bad_endpoint_names_the_setting(self, endpoint: str) -> None:
        with pytest.raises(SettingError) as refused:
            load_storage_settings({"ACCOUNTS_TABLE_ENDPOINT": endpoint})
        assert refused.value.setting == "ACCOUNTS_TABLE_ENDPOINT"

    def test_endpoint_needs_no_connection_string(self) -> None:
        settings = load_settings(
            {"AUTH_SIGNING_KEY": KEY, "ACCOUNTS_TABLE_ENDPOINT": "https://a.table.core.windows.net"}
        )
        assert settings.storage.uses_identity


class TestInfrastructure:
    """infra/, azure.yaml: what `azd up` provisions."""

    def test_files_are_well_formed(self) -> None:
        parameters = json.loads((INFRA / "main.parameters.json").read_text())
        assert set(parameters["parameters"]) <= set(re.findall(r"^param (\w+)", BICEP, re.MULTILINE))
        azure_yaml = yaml.safe_load((PROJECT_ROOT / "azure.yaml").read_text())
        assert azure_yaml["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
        hook = azure_yaml["hooks"]["preprovision"]["run"]
        assert (PROJECT_ROOT / hook).exists()

    def test_every_production_setting_is_set(self) -> None:
        settings = bicep_app_settings()
        required = {"AUTH_SIGNING_KEY", "AUTH_TOKEN_FORMAT", "ACCOUNTS_TABLE_ENDPOINT", "ACCOUNTS_TABLE"}
        assert required <= set(settings)
        assert {
            "AZURE_CLIENT_ID",
            "AzureWebJobsStorage__accountName",
            "AzureWebJobsStorage__credential",
        } <= set(settings)

    def test_only_settings_the_code_reads(self) -> None:
        ours = {name for name in bicep_app_settings() if name.startswith(("AUTH_", "ACCOUNTS_"))}
        assert ours <= settings_read_by_the_code()

    def test_signing_key_comes_from_key_vault(self) -> None:
        assert bicep_app_settings()["AUTH_SIGNING_KEY"].startswith("'@Microsoft.KeyVault(SecretUri=")
        assert "keyVaultReferenceIdentity: identity.id" in BICEP

    def test_identity_gets_the_table_role_on_the_table(self) -> None:
        """Storage Table Data Contributor, scoped to the accounts table: the least role for entities."""
        assignment = BICEP.split("resource tableAccess", 1)[1].split("\nresource ", 1)[0]
        assert "scope: accounts" in assignment
        assert "storageTableDataContributor" in assignment
        assert "var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'" in BICEP

    def test_no_shared_keys(self) -> None:
        assert "allowSharedKeyAccess: false" in BICEP
        assert "listKeys" not in BICEP
        assert "AccountKey" not in BICEP
