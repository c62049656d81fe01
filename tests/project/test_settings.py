"""App settings: defaults, fallbacks, and failing closed on every bad value."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

import pytest

from shared.errors import SettingError
from shared.settings import get_settings, load_settings, reset_settings
from shared.tokens.access_tokens import ZUMO_ISSUER, TokenFormat, appservice_signing_key, zumo_signing_key

HEX_KEY = secrets.token_hex(32)
MINIMAL = {"AUTH_SIGNING_KEY": HEX_KEY, "ACCOUNTS_STORAGE_CONNECTION": "UseDevelopmentStorage=true"}


def failing_setting(environ: dict[str, str]) -> str:
    with pytest.raises(SettingError) as refused:
        load_settings(environ)
    return refused.value.setting


class TestDefaults:
    """A key and a connection string are all that must be set."""

    def test_defaults(self) -> None:
        settings = load_settings(MINIMAL)
        assert settings.tokens.format is TokenFormat.APPSERVICE
        assert settings.tokens.keys == (bytes.fromhex(HEX_KEY),)
        assert settings.tokens.issuer == settings.tokens.audience == ZUMO_ISSUER
        assert settings.tokens.lifetime == timedelta(days=30)
        assert settings.storage.table_name == "Accounts"
        assert settings.password_policy.min_length == 8
        assert settings.password_policy.max_length == 256
        assert settings.argon2.meets_owasp_minimum()

    def test_issuer_follows_the_site_hostname(self) -> None:
        """On App Service, iss and aud default to the site's URL, as App Service's own tokens."""
        settings = load_settings(MINIMAL | {"WEBSITE_HOSTNAME": "myapp.azurewebsites.net"})
        assert settings.tokens.issuer == "https://myapp.azurewebsites.net/"
        assert settings.tokens.audience == "https://myapp.azurewebsites.net/"

    def test_explicit_issuer_and_audience_win(self) -> None:
        settings = load_settings(
            MINIMAL
            | {
                "WEBSITE_HOSTNAME": "x",
                "AUTH_TOKEN_ISSUER": "https://i/",
                "AUTH_TOKEN_AUDIENCE": "https://a/",
            }
        )
        assert (settings.tokens.issuer, settings.tokens.audience) == ("https://i/", "https://a/")

    def test_zumo_defaults(self) -> None:
        """zumo: the master key is any string of 32+ bytes; iss is the zumo URN and aud Custom."""
        master = "Mobile services master key of 32+"
        settings = load_settings(MINIMAL | {"AUTH_TOKEN_FORMAT": "zumo", "AUTH_SIGNING_KEY": master})
        assert settings.tokens.keys == (zumo_signing_key(master),)
        assert (settings.tokens.issuer, settings.tokens.audience) == (ZUMO_ISSUER, "Custom")

    def test_fallbacks(self) -> None:
        """WEBSITE_AUTH_SIGNING_KEY and AzureWebJobsStorage stand in when ours are unset."""
        settings = load_settings({"WEBSITE_AUTH_SIGNING_KEY": HEX_KEY, "AzureWebJobsStorage": "conn"})
        assert settings.tokens.keys == (appservice_signing_key(HEX_KEY),)
        assert settings.storage.connection_string == "conn"

    def test_own_settings_take_precedence_over_fallbacks(self) -> None:
        other = secrets.token_hex(32)
        settings = load_settings(MINIMAL | {"WEBSITE_AUTH_SIGNING_KEY": other, "AzureWebJobsStorage": "x"})
        assert settings.tokens.keys == (bytes.fromhex(HEX_KEY),)
        assert settings.storage.connection_string == "UseDevelopmentStorage=true"

    def test_previous_keys(self) -> None:
        previous = [secrets.token_hex(32), secrets.token_hex(32)]
        settings = load_settings(MINIMAL | {"AUTH_PREVIOUS_SIGNING_KEYS": " , ".join(previous)})
        assert settings.tokens.keys == tuple(bytes.fromhex(k) for k in [HEX_KEY, *previous])

    def test_session_cap(self) -> None:
        assert load_settings(MINIMAL).session_max_age == timedelta(days=90)
        assert load_settings(MINIMAL | {"AUTH_SESSION_MAX_SECONDS": "0"}).session_max_age is None
        assert load_settings(MINIMAL | {"AUTH_SESSION_MAX_SECONDS": "3600"}).session_max_age == timedelta(
            hours=1
        )

    def test_address_limits(self) -> None:
        limits = load_settings(MINIMAL).address_limits
        assert (str(limits.register), str(limits.login)) == ("30/300", "100/300")
        assert (limits.trusted_proxies, limits.fail_open) == (0, False)
        changed = load_settings(
            MINIMAL
            | {
                "AUTH_RATE_LIMIT_REGISTER": "0",
                "AUTH_RATE_LIMIT_LOGIN": "10/60",
                "AUTH_TRUSTED_PROXY_COUNT": "1",
                "AUTH_RATE_LIMIT_FAIL_OPEN": "true",
            }
        ).address_limits
        assert not changed.register.enabled
        assert (changed.login.count, changed.login.seconds) == (10, 60)
        assert (changed.trusted_proxies, changed.fail_open) == (1, True)

    def test_repr_hides_secrets(self) -> None:
        """Settings can be logged without leaking the key or the connection string."""
        text = repr(load_settings(MINIMAL | {"ACCOUNTS_STORAGE_CONNECTION": "AccountKey=s3cr3t"}))
        assert HEX_KEY not in text
        assert repr(bytes.fromhex(HEX_KEY)) not in text
        assert "s3cr3t" not in text


class TestFailsClosed:
    """Every bad value raises an error naming the setting."""

    @pytest.mark.parametrize(
        ("changes", "setting"),
        [
            ({"AUTH_SIGNING_KEY": ""}, "AUTH_SIGNING_KEY"),
            ({"AUTH_SIGNING_KEY": "ab" * 31}, "AUTH_SIGNING_KEY"),
            ({"AUTH_SIGNING_KEY": "not hex at all, but long enough for a key"}, "AUTH_SIGNING_KEY"),
            ({"AUTH_SIGNING_KEY": "@Microsoft.KeyVault(SecretUri=https://v/secrets/k/)"}, "AUTH_SIGNING_KEY"),
            ({"AUTH_TOKEN_FORMAT": "zumo", "AUTH_SIGNING_KEY": "short master key"}, "AUTH_SIGNING_KEY"),
            ({"AUTH_TOKEN_FORMAT": "jwe"}, "AUTH_TOKEN_FORMAT"),
            ({"AUTH_PREVIOUS_SIGNING_KEYS": "abcd"}, "AUTH_PREVIOUS_SIGNING_KEYS"),
            ({"AUTH_TOKEN_LIFETIME_SECONDS": "soon"}, "AUTH_TOKEN_LIFETIME_SECONDS"),
            ({"AUTH_TOKEN_LIFETIME_SECONDS": "0"}, "AUTH_TOKEN_LIFETIME_SECONDS"),
            ({"AUTH_TOKEN_LIFETIME_SECONDS": str(400 * 86400)}, "AUTH_TOKEN_LIFETIME_SECONDS"),
            ({"ACCOUNTS_STORAGE_CONNECTION": ""}, "ACCOUNTS_STORAGE_CONNECTION"),
            (
                {"ACCOUNTS_STORAGE_CONNECTION": "@Microsoft.KeyVault(VaultName=v;SecretName=s)"},
                "ACCOUNTS_STORAGE_CONNECTION",
            ),
            ({"ACCOUNTS_TABLE": "no-dashes"}, "ACCOUNTS_TABLE"),
            ({"ACCOUNTS_TABLE": "1abc"}, "ACCOUNTS_TABLE"),
            ({"AUTH_PASSWORD_MIN_LENGTH": "6"}, "AUTH_PASSWORD_MIN_LENGTH"),
            ({"AUTH_PASSWORD_MAX_LENGTH": "7"}, "AUTH_PASSWORD_MAX_LENGTH"),
            ({"AUTH_PASSWORD_MAX_LENGTH": "100000"}, "AUTH_PASSWORD_MAX_LENGTH"),
            ({"AUTH_ARGON2_MEMORY_KIB": "1024"}, "AUTH_ARGON2_MEMORY_KIB"),
            ({"AUTH_ARGON2_MEMORY_KIB": "8192", "AUTH_ARGON2_TIME_COST": "2"}, "AUTH_ARGON2_MEMORY_KIB"),
            ({"AUTH_ARGON2_PARALLELISM": "0"}, "AUTH_ARGON2_PARALLELISM"),
            ({"AUTH_SESSION_MAX_SECONDS": "30"}, "AUTH_SESSION_MAX_SECONDS"),
            ({"AUTH_SESSION_MAX_SECONDS": "-1"}, "AUTH_SESSION_MAX_SECONDS"),
            ({"AUTH_RATE_LIMIT_REGISTER": "30"}, "AUTH_RATE_LIMIT_REGISTER"),
            ({"AUTH_RATE_LIMIT_LOGIN": "100/0"}, "AUTH_RATE_LIMIT_LOGIN"),
            ({"AUTH_RATE_LIMIT_LOGIN": "lots"}, "AUTH_RATE_LIMIT_LOGIN"),
            ({"AUTH_RATE_LIMIT_FAIL_OPEN": "maybe"}, "AUTH_RATE_LIMIT_FAIL_OPEN"),
            ({"AUTH_TRUSTED_PROXY_COUNT": "-1"}, "AUTH_TRUSTED_PROXY_COUNT"),
            ({"AUTH_TRUSTED_PROXY_COUNT": "11"}, "AUTH_TRUSTED_PROXY_COUNT"),
        ],
    )
    def test_bad_value_names_its_setting(self, changes: dict[str, str], setting: str) -> None:
        assert failing_setting(MINIMAL | changes) == setting

    def test_missing_key_with_no_fallback(self) -> None:
        error_setting = failing_setting({"ACCOUNTS_STORAGE_CONNECTION": "x"})
        assert error_setting == "AUTH_SIGNING_KEY"

    def test_unresolved_fallback_key_names_the_fallback(self) -> None:
        environ = {"WEBSITE_AUTH_SIGNING_KEY": "@Microsoft.KeyVault(x)", "AzureWebJobsStorage": "c"}
        assert failing_setting(environ) == "WEBSITE_AUTH_SIGNING_KEY"

    def test_message_says_what_is_wrong_without_the_value(self) -> None:
        bad_key = "ab" * 31
        with pytest.raises(SettingError) as refused:
            load_settings(MINIMAL | {"AUTH_SIGNING_KEY": bad_key})
        assert str(refused.value) == "app setting AUTH_SIGNING_KEY is shorter than 32 bytes (64 hex digits)"
        assert bad_key not in str(refused.value)


class TestCaching:
    """Settings are parsed once per process; errors are logged once and raised every time."""

    def test_parsed_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in MINIMAL.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        first = get_settings()
        monkeypatch.setenv("AUTH_SIGNING_KEY", secrets.token_hex(32))
        assert get_settings() is first
        reset_settings()
        assert get_settings() is not first

    def test_error_logged_once_raised_always(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("ACCOUNTS_STORAGE_CONNECTION", "x")
        monkeypatch.setenv("AUTH_SIGNING_KEY", "deadbeef")
        reset_settings()
        with caplog.at_level(logging.ERROR, logger="shared.settings"):
            for _ in range(3):
                with pytest.raises(SettingError, match="AUTH_SIGNING_KEY"):
                    get_settings()
        assert [r.getMessage() for r in caplog.records] == [
            "Refusing to serve: app setting AUTH_SIGNING_KEY is shorter than 32 bytes (64 hex digits)"
        ]
        reset_settings()


def test_the_suite_clears_every_setting_the_code_reads() -> None:
    """So that nothing in a developer's shell leaks into a test."""
    import re
    from pathlib import Path

    from tests.conftest import APP_SETTINGS

    folder = Path(__file__).resolve().parents[2] / "shared" / "settings"
    source = "\n".join(p.read_text() for p in sorted(folder.glob("*.py")))
    read = set(re.findall(r'"((?:AUTH|ACCOUNTS|WEBSITE)_[A-Z0-9_]+|AzureWebJobsStorage)"', source))
    assert read <= set(APP_SETTINGS)


SMTP = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AUTH_MAIL_SMTP_HOST": "smtp.example.com",
    "AUTH_MAIL_FROM": "no-reply@example.com",
}


class TestMailAndSessionSettings:
    """Mail, codes, the second factor and sessions: each bad value names its setting."""

    @pytest.mark.parametrize(("value", "bounds"), [("0", (0, 0)), ("2-7", (2, 7)), (" 3 - 3 ", (3, 3))])
    def test_mail_delay(self, value: str, bounds: tuple[int, int]) -> None:
        """AUTH_MAIL_DELAY_SECONDS is MIN-MAX or one number; each draw stays within it."""
        delay = load_settings(MINIMAL | SMTP | {"AUTH_MAIL_DELAY_SECONDS": value}).mail.delay
        assert (delay.minimum, delay.maximum) == bounds
        assert all(bounds[0] <= delay.draw() <= bounds[1] for _ in range(50))

    def test_mail_defaults(self) -> None:
        """No transport: mail is off, registration as before."""
        mail = load_settings(MINIMAL).mail
        assert not mail.configured
        assert mail.queue.name == "auth-mail"
        assert (mail.limit.count, mail.limit.seconds) == (5, 3600)
        assert mail.code_lifetime == timedelta(seconds=600)
        assert (mail.delay.minimum, mail.delay.maximum) == (1, 5)
        smtp = load_settings(MINIMAL | SMTP).mail.transport
        assert smtp is not None
        assert (getattr(smtp, "port", None), str(getattr(smtp, "security", ""))) == (587, "starttls")

    @pytest.mark.parametrize(
        ("changes", "setting"),
        [
            ({"AUTH_MAIL_FROM": ""}, "AUTH_MAIL_FROM"),
            ({"AUTH_MAIL_FROM": "not an address"}, "AUTH_MAIL_FROM"),
            ({"AUTH_MAIL_SMTP_SECURITY": "ssl3"}, "AUTH_MAIL_SMTP_SECURITY"),
            ({"AUTH_MAIL_SMTP_PORT": "70000"}, "AUTH_MAIL_SMTP_PORT"),
            ({"AUTH_MAIL_ACS_ENDPOINT": "https://acs.example.com"}, "AUTH_MAIL_ACS_ENDPOINT"),
            ({"AzureWebJobsStorage": ""}, "AzureWebJobsStorage"),
            ({"AUTH_MAIL_QUEUE": "Has_Capitals"}, "AUTH_MAIL_QUEUE"),
            ({"AUTH_CODE_LIFETIME_SECONDS": "30"}, "AUTH_CODE_LIFETIME_SECONDS"),
            ({"AUTH_CODE_LIFETIME_SECONDS": "7200"}, "AUTH_CODE_LIFETIME_SECONDS"),
            ({"AUTH_MAIL_LIMIT": "five"}, "AUTH_MAIL_LIMIT"),
            ({"AUTH_MAIL_DELAY_SECONDS": "5-1"}, "AUTH_MAIL_DELAY_SECONDS"),
            ({"AUTH_MAIL_DELAY_SECONDS": "1-61"}, "AUTH_MAIL_DELAY_SECONDS"),
            ({"AUTH_MAIL_DELAY_SECONDS": "-1"}, "AUTH_MAIL_DELAY_SECONDS"),
            ({"AUTH_MAIL_DELAY_SECONDS": "soon"}, "AUTH_MAIL_DELAY_SECONDS"),
            ({"AUTH_PUBLIC_BASE_URL": "http://auth.example.com"}, "AUTH_PUBLIC_BASE_URL"),
            ({"AUTH_PUBLIC_BASE_URL": "https://auth.example.com/#x"}, "AUTH_PUBLIC_BASE_URL"),
            ({"AUTH_MAIL_TEMPLATES": "/nonexistent/templates"}, "AUTH_MAIL_TEMPLATES"),
            ({"AUTH_SESSION_IDLE_SECONDS": "2"}, "AUTH_SESSION_IDLE_SECONDS"),
            ({"AUTH_MAX_SESSIONS": "0"}, "AUTH_MAX_SESSIONS"),
            ({"AUTH_MFA_ISSUER": "Acme: Inc"}, "AUTH_MFA_ISSUER"),
            ({"AUTH_MFA_CHALLENGE_SECONDS": "1"}, "AUTH_MFA_CHALLENGE_SECONDS"),
        ],
    )
    def test_bad_values_name_their_setting(self, changes: dict[str, str], setting: str) -> None:
        """Each is refused, naming the setting."""
        assert failing_setting(MINIMAL | SMTP | changes) == setting

    def test_required_verification_needs_a_transport(self) -> None:
        """AUTH_REQUIRE_VERIFIED_EMAIL=true without mail cannot work."""
        assert (
            failing_setting(MINIMAL | {"AUTH_REQUIRE_VERIFIED_EMAIL": "true"})
            == "AUTH_REQUIRE_VERIFIED_EMAIL"
        )
        assert load_settings(MINIMAL | SMTP | {"AUTH_REQUIRE_VERIFIED_EMAIL": "true"}).mail.require_verified

    @pytest.mark.parametrize("key", ["", "abc", "zz" * 32, HEX_KEY + "00"])
    def test_a_bad_encryption_key_fails_closed_only_where_it_is_needed(self, key: str) -> None:
        """The service loads; asking for the keys raises, naming AUTH_ENCRYPTION_KEY."""
        settings = load_settings(MINIMAL | {"AUTH_ENCRYPTION_KEY": key})
        with pytest.raises(SettingError) as refused:
            settings.mfa.keys()
        assert refused.value.setting == "AUTH_ENCRYPTION_KEY"

    def test_a_bad_previous_encryption_key_is_named(self) -> None:
        """AUTH_PREVIOUS_ENCRYPTION_KEYS is checked key by key."""
        settings = load_settings(
            MINIMAL | {"AUTH_ENCRYPTION_KEY": HEX_KEY, "AUTH_PREVIOUS_ENCRYPTION_KEYS": "nothex"}
        )
        with pytest.raises(SettingError) as refused:
            settings.mfa.keys()
        assert refused.value.setting == "AUTH_PREVIOUS_ENCRYPTION_KEYS"

    def test_identity_based_queue(self) -> None:
        """AzureWebJobsStorage__accountName: the queue service of that account, reached by identity."""
        environ = MINIMAL | {k: v for k, v in SMTP.items() if k != "AzureWebJobsStorage"}
        queue = load_settings(environ | {"AzureWebJobsStorage__accountName": "st1"}).mail.queue
        assert (queue.endpoint, queue.connection_string) == ("https://st1.queue.core.windows.net", None)
