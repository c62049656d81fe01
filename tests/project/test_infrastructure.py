"""Deployment files: identity-based storage, and infrastructure that sets what the code reads.

No Bicep compiler can be installed from the package registries this project's CI reaches, so
these tests check what can be checked without one: well-formed JSON and YAML, and that the
Bicep sets every app setting production needs, only settings the code knows, the signing key
from Key Vault, the table role the identity-based client needs, and mail: the queue and its
role, Communication Services Email with its domain, and the role that lets the identity send.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableClient

from shared.errors import SettingError
from shared.settings import load_settings, load_storage_settings
from shared.settings.mail import AcsSettings
from shared.storage import new_table_client
from tools.devhost import worker
from tools.emulators.azurite import PROJECT_ROOT

INFRA = PROJECT_ROOT / "infra"
BICEP = (INFRA / "main.bicep").read_text()
KEY = "ab" * 32


def settings_read_by_the_code() -> set[str]:
    """Every AUTH_* and ACCOUNTS_* name in the code under shared/ (settings.py and the concerns that
    parse their own, such as shared/settings/signing.py)."""
    names: set[str] = set()
    for path in (PROJECT_ROOT / "shared").rglob("*.py"):
        names |= set(re.findall(r'"((?:AUTH|ACCOUNTS)_[A-Z0-9_]+)"', path.read_text()))
    return names


def bicep_app_settings() -> dict[str, str]:
    block = BICEP.split("resource settings 'config'", 1)[1].split("dependsOn", 1)[0]
    return dict(re.findall(r"^\s+([A-Za-z_]+): (.+)$", block, re.MULTILINE)[1:])


def bicep_resource(symbol: str) -> str:
    """The text of ``resource <symbol> ...`` up to the next top-level resource."""
    return BICEP.split(f"\nresource {symbol} ", 1)[1].split("\nresource ", 1)[0]


def bicep_outputs() -> dict[str, str]:
    return dict(re.findall(r"^output (\w+) string = (.+)$", BICEP, re.MULTILINE))


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

    def test_encryption_key_comes_from_key_vault_and_is_generated_once(self) -> None:
        """The second factor's key: a Key Vault secret the identity may read, generated by the azd hook."""
        setting = bicep_app_settings()["AUTH_ENCRYPTION_KEY"]
        assert setting == "'@Microsoft.KeyVault(SecretUri=${encryptionKeySecret.properties.secretUri})'"
        assert "scope: encryptionKeySecret" in BICEP
        parameters = (PROJECT_ROOT / "infra" / "main.parameters.json").read_text()
        assert '"encryptionKey": { "value": "${AUTH_ENCRYPTION_KEY}" }' in parameters
        hook = (PROJECT_ROOT / "infra" / "generate-signing-key.sh").read_text()
        assert 'azd env set AUTH_ENCRYPTION_KEY "$(python3' in hook

    def test_private_key_comes_from_key_vault_and_the_hooks_key_parses(self) -> None:
        """AUTH_SIGNING_PRIVATE_KEY: from Key Vault, readable by the identity; the hook's key loads."""
        import subprocess

        from shared.settings.signing import PRIVATE_KEY_SETTING, SigningAlgorithm, parse_private_key

        settings = bicep_app_settings()
        assert settings["AUTH_SIGNING_PRIVATE_KEY"] == (
            "'@Microsoft.KeyVault(SecretUri=${signingPrivateKeySecret.properties.secretUri})'"
        )
        assert settings["AUTH_TOKEN_ALGORITHM"] == "tokenAlgorithm"
        assert "scope: signingPrivateKeySecret" in BICEP
        parameters = (PROJECT_ROOT / "infra" / "main.parameters.json").read_text()
        assert '"signingPrivateKey": { "value": "${AUTH_SIGNING_PRIVATE_KEY}" }' in parameters
        hook = (PROJECT_ROOT / "infra" / "generate-signing-key.sh").read_text()
        command = hook.split('azd env set AUTH_SIGNING_PRIVATE_KEY "$(', 1)[1].split(')"\n', 1)[0]
        one_line = subprocess.run(
            ["sh", "-c", command],  # noqa: S607 - the hook runs under sh, as azd runs it
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert "\n" not in one_line.strip(), "one line, with \\n for each newline"
        key = parse_private_key(one_line, SigningAlgorithm.ES256, setting=PRIVATE_KEY_SETTING)
        assert key.algorithm is SigningAlgorithm.ES256

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

    def test_identity_gets_the_queue_role_on_the_account(self) -> None:
        """Storage Queue Data Contributor on the account: the trigger also writes the poison queue."""
        assignment = bicep_resource("queueAccess")
        assert "scope: storage\n" in assignment
        assert "storageQueueDataContributor" in assignment
        assert "var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'" in BICEP
        comment = BICEP.split("\nresource queueAccess ", 1)[0].rsplit("\n\n", 1)[1]
        assert "poison queue" in comment
        assert "queueAccess" in BICEP.split("resource settings 'config'", 1)[1].split("\n    dependsOn", 1)[1]

    def test_mail_queue_is_set_and_reached_by_identity(self) -> None:
        """AUTH_MAIL_QUEUE names the queue Bicep creates; AzureWebJobsStorage names its service."""
        settings = bicep_app_settings()
        assert settings["AUTH_MAIL_QUEUE"] == "mailQueue.name"
        assert "var mailQueueName = 'auth-mail'" in BICEP
        assert "name: mailQueueName" in bicep_resource("mailQueue")
        assert "parent: queues" in bicep_resource("mailQueue")
        # Identity-based host storage (accountName + credential), so the queue service is named the same way.
        assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
        assert settings["AzureWebJobsStorage__queueServiceUri"] == "storage.properties.primaryEndpoints.queue"
        assert "AzureWebJobsStorage" not in settings, "no connection string"

    def test_communication_services_email_with_a_managed_domain(self) -> None:
        """An Email Communication Service, its Azure-managed domain, a Communication Service linked to it."""
        email_service = bicep_resource("emailService")
        assert email_service.startswith("'Microsoft.Communication/emailServices@")
        assert "dataLocation: mailDataLocation" in email_service
        domain = bicep_resource("mailDomain")
        assert domain.startswith("'Microsoft.Communication/emailServices/domains@")
        assert "parent: emailService" in domain
        assert "name: 'AzureManagedDomain'" in domain
        assert "domainManagement: 'AzureManaged'" in domain
        communication = bicep_resource("communication")
        assert communication.startswith("'Microsoft.Communication/communicationServices@")
        assert "linkedDomains: [mailDomain.id]" in communication
        assert "dataLocation: mailDataLocation" in communication, "linked domains share the data location"
        assert "param mailDataLocation string = 'United States'" in BICEP

    def test_identity_may_send_mail(self) -> None:
        """The documented role for sending with an Entra identity, on the Communication Service only."""
        assignment = bicep_resource("mailAccess")
        assert "scope: communication\n" in assignment
        assert "communicationAndEmailServiceOwner" in assignment
        assert "var communicationAndEmailServiceOwner = '09976791-48a7-449e-bb21-39d1a415f350'" in BICEP
        comment = BICEP.split("\nresource mailAccess ", 1)[0].rsplit("\n\n", 1)[1]
        assert "Communication and Email Service Owner" in comment
        assert "https://learn.microsoft.com/azure/communication-services/" in comment
        assert "mailAccess" in BICEP.split("resource settings 'config'", 1)[1].split("\n    dependsOn", 1)[1]

    def test_mail_settings_point_at_communication_services(self) -> None:
        """The endpoint is the resource's host name, the sender is on the managed domain; both are output."""
        settings = bicep_app_settings()
        endpoint = "'https://${communication.properties.hostName}'"
        sender = "'DoNotReply@${mailDomain.properties.mailFromSenderDomain}'"
        assert settings["AUTH_MAIL_ACS_ENDPOINT"] == endpoint
        assert settings["AUTH_MAIL_FROM"] == sender
        assert not {name for name in settings if name.startswith("AUTH_MAIL_SMTP_")}, "one transport"
        assert bicep_outputs()["AUTH_MAIL_ACS_ENDPOINT"] == endpoint
        assert bicep_outputs()["AUTH_MAIL_FROM"] == sender
        # Links in mails point at the app's own host name, never at a request's Host header.
        assert settings["AUTH_PUBLIC_BASE_URL"] == "'https://${app.properties.defaultHostName}'"

    def test_the_code_accepts_the_deployed_mail_settings(self) -> None:
        """The values Bicep produces (as deployed) load: ACS by identity, the queue by its service URI."""
        settings = load_settings(
            {
                "AUTH_SIGNING_KEY": KEY,
                "ACCOUNTS_TABLE_ENDPOINT": "https://st1.table.core.windows.net/",
                "AzureWebJobsStorage__accountName": "st1",
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__queueServiceUri": "https://st1.queue.core.windows.net/",
                "AUTH_MAIL_QUEUE": "auth-mail",
                "AUTH_MAIL_ACS_ENDPOINT": "https://acs-1.unitedstates.communication.azure.com",
                "AUTH_MAIL_FROM": "DoNotReply@0a1b2c3d-0000-4000-8000-000000000000.azurecomm.net",
                "AUTH_PUBLIC_BASE_URL": "https://func-1.azurewebsites.net",
            }
        )
        assert settings.mail.public_base_url == "https://func-1.azurewebsites.net"
        assert settings.mail.configured
        assert settings.mail.transport == AcsSettings("https://acs-1.unitedstates.communication.azure.com")
        assert settings.mail.queue.name == "auth-mail"
        assert settings.mail.queue.endpoint == "https://st1.queue.core.windows.net/"
        assert settings.mail.queue.connection_string is None

    def test_cleanup_schedule_is_set_hourly_where_the_host_reads_it(self) -> None:
        """Bicep sets AUTH_CLEANUP_SCHEDULE hourly, as the example does; cleanup/function.json names it."""
        (trigger,) = json.loads((PROJECT_ROOT / "cleanup" / "function.json").read_text())["bindings"]
        assert trigger["type"] == "timerTrigger"
        assert trigger["schedule"] == "%AUTH_CLEANUP_SCHEDULE%"
        example = json.loads((PROJECT_ROOT / "local.settings.json.example").read_text())["Values"]
        assert bicep_app_settings()["AUTH_CLEANUP_SCHEDULE"] == f"'{example['AUTH_CLEANUP_SCHEDULE']}'"
        assert example["AUTH_CLEANUP_SCHEDULE"] == "0 0 * * * *", "NCRONTAB with seconds: on the hour"


class TestDeployedPython:
    """The Python and worker Azure runs are the ones the suite runs the functions on."""

    def test_infra_deploys_the_python_of_microsofts_worker(self) -> None:
        """main.bicep's default Python is 3.13, where requirements.txt pins azure-functions-runtime-v1."""
        default = re.search(r"^param pythonVersion string = '([\d.]+)'", BICEP, re.MULTILINE)
        assert default is not None
        assert default.group(1) == "3.13"
        if sys.version_info[:2] == (3, 13):
            assert default.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"

    def test_requirements_pin_the_worker_the_local_host_loads_through(self) -> None:
        """requirements.txt pins the worker release tools/devhost/worker.py calls, for Python 3.13+ only."""
        lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        pins = [line for line in lines if line.startswith("azure-functions-runtime-v1")]
        assert pins == [f'azure-functions-runtime-v1=={worker.RUNTIME_V1_VERSION}; python_version >= "3.13"']
        sdk = [line for line in lines if line.startswith("azure-functions>=")]
        assert sdk == [
            'azure-functions>=1.18,<2; python_version < "3.13"',
            'azure-functions>=2,<3; python_version >= "3.13"',
        ]
