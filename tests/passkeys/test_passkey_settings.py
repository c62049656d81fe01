"""The passkey settings: parsed once, Android fingerprints to origins, and every bad value refused by name."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest

from shared.errors import SettingError
from shared.passkeys.association import apple_app_site_association, asset_links
from shared.settings import load_settings
from shared.settings.passkeys import PasskeySettings

BASE = {"AUTH_SIGNING_KEY": "ab" * 32, "ACCOUNTS_STORAGE_CONNECTION": "UseDevelopmentStorage=true"}


def passkeys(**values: str) -> PasskeySettings | None:
    return load_settings(BASE | values).passkeys


def test_off_without_a_relying_party_id() -> None:
    """No AUTH_PASSKEY_RP_ID: passkeys are off, whatever else is set."""
    assert passkeys() is None
    assert passkeys(AUTH_PASSKEY_IOS_APP_IDS="ABCDE12345.com.example.app") is None


def test_defaults_and_origins() -> None:
    """The RP id's https origin always; the name from AUTH_APP_NAME; further origins exact."""
    settings = passkeys(
        AUTH_PASSKEY_RP_ID="Example.COM",
        AUTH_APP_NAME="Birdwatch",
        AUTH_PASSKEY_ORIGINS="https://app.example.com",
    )
    assert settings is not None
    assert settings.rp_id == "example.com"
    assert settings.rp_name == "Birdwatch"
    assert settings.origins == ("https://example.com", "https://app.example.com")
    assert (settings.challenge_lifetime.total_seconds(), settings.max_passkeys) == (300, 10)


def test_android_fingerprints_give_origins_and_asset_links() -> None:
    """A fingerprint in any case gives android:apk-key-hash:<base64url>; assetlinks lists it upper case."""
    release, debug = secrets.token_bytes(32), hashlib.sha256(b"debug").digest()
    text = ":".join(f"{b:02x}" for b in release)
    settings = passkeys(
        AUTH_PASSKEY_RP_ID="example.com",
        AUTH_PASSKEY_ANDROID_APPS=f"com.example.app:{text}, com.example.app:{debug.hex(':').upper()}",
        AUTH_PASSKEY_IOS_APP_IDS="ABCDE12345.com.example.app,ABCDE12345.com.example.app.beta",
    )
    assert settings is not None
    expected = [
        "android:apk-key-hash:" + base64.urlsafe_b64encode(k).decode().rstrip("=") for k in (release, debug)
    ]
    assert list(settings.origins[1:]) == expected
    (statement,) = asset_links(settings)
    assert statement["target"]["sha256_cert_fingerprints"] == [
        release.hex(":").upper(),
        debug.hex(":").upper(),
    ]
    assert "delegate_permission/common.get_login_creds" in statement["relation"]
    assert apple_app_site_association(settings)["webcredentials"]["apps"] == [
        "ABCDE12345.com.example.app",
        "ABCDE12345.com.example.app.beta",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_PASSKEY_RP_ID", "https://example.com"),
        ("AUTH_PASSKEY_RP_ID", "example.com:443"),
        ("AUTH_PASSKEY_RP_ID", "127.0.0.1"),
        ("AUTH_PASSKEY_ORIGINS", "https://example.com/"),
        ("AUTH_PASSKEY_ORIGINS", "http://example.com"),
        ("AUTH_PASSKEY_ORIGINS", "example.com"),
        ("AUTH_PASSKEY_IOS_APP_IDS", "com.example.app"),
        ("AUTH_PASSKEY_ANDROID_APPS", "com.example.app"),
        ("AUTH_PASSKEY_ANDROID_APPS", "com.example.app:AB:CD"),
        ("AUTH_PASSKEY_ANDROID_APPS", "nopackage:" + ":".join(["AB"] * 32)),
        ("AUTH_PASSKEY_CHALLENGE_SECONDS", "0"),
        ("AUTH_PASSKEY_CHALLENGE_SECONDS", "soon"),
        ("AUTH_MAX_PASSKEYS", "21"),
    ],
)
def test_a_malformed_value_fails_closed_naming_the_setting(name: str, value: str) -> None:
    """Each malformed passkey setting stops the service with an error that names it."""
    values = {"AUTH_PASSKEY_RP_ID": "example.com", name: value}
    with pytest.raises(SettingError) as raised:
        load_settings(BASE | values)
    assert raised.value.setting == name
