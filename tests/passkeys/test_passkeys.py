"""Passkeys through the function folders, on Azurite, with a software authenticator."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

import apple_app_site_association
import assetlinks
import login
import me
import passkey
import passkeys
import passkeys_authentication
import passkeys_authentication_options
import passkeys_registration
import passkeys_registration_options
from shared.accounts.service import account_service
from shared.passkeys import registration
from shared.passkeys.challenges import PARTITION_PREFIX
from tests.conftest import AppEnvironment
from tests.mailtest import Inbox, deliver_queued
from tests.passkeys.conftest import (
    ANDROID_FINGERPRINT,
    ANDROID_ORIGIN,
    ANDROID_PACKAGE,
    IOS_APP_ID,
    PASSWORD,
    RP_ID,
    WEB_ORIGIN,
    Client,
    authentication_options,
    body_of,
    call,
    passkey_settings,
    sign_in,
)
from tools.software_authenticator import SoftwareAuthenticator, b64, unb64


def claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event=passkey_refused" in r.getMessage()]


def test_add_sign_in_rename_list_and_remove(mail_env: AppEnvironment, inbox: Inbox) -> None:
    """The whole round: add (201, notice), sign in without an email (a session as login's), rename, remove."""
    mail_env.set(**passkey_settings())
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    added = user.add(authenticator)
    assert added.status_code == 201, added.get_body()
    created = body_of(added)
    assert created["name"] == "iCloud Keychain" == created["provider"]
    assert created["backedUp"] is True
    assert created["lastUsedAt"] is None
    assert user.list() == [created]
    assert body_of(call(me, "GET", token=user.token))["passkeys"] == 1

    signed_in = sign_in(authenticator.get(authentication_options()))
    assert signed_in.status_code == 200, signed_in.get_body()
    session = body_of(signed_in)
    assert set(session) == set(body_of(call(login, "POST", {"email": user.email, "password": PASSWORD})))
    assert session["user"]["email"] == user.email
    assert claims(session["token"])["amr"] == ["swk", "user", "mfa"]
    account = account_service().authenticate(session["token"], require_mfa=True)
    assert account.email == user.email
    assert user.list()[0]["lastUsedAt"] is not None

    renamed = user.rename(created["id"], "  Work phone ")
    assert renamed.status_code == 200
    assert body_of(renamed)["name"] == "Work phone"
    assert [p["name"] for p in user.list()] == ["Work phone"]

    assert user.remove(created["id"], {"password": "not the password"}).status_code == 401
    assert user.remove(created["id"], {}).status_code == 400
    assert user.remove(created["id"], {"password": PASSWORD}).status_code == 204
    assert user.list() == []
    assert body_of(call(me, "GET", token=user.token))["passkeys"] == 0
    assert sign_in(authenticator.get(authentication_options())).status_code == 401
    # The password still signs in: a passkey is added beside it, never instead.
    assert call(login, "POST", {"email": user.email, "password": PASSWORD}).status_code == 200

    deliver_queued(mail_env)
    subjects = [mail.subject for mail in inbox.wait_for(user.email, 3)]
    assert "A passkey was added to your Test app account" in subjects
    assert "A passkey was removed from your Test app account" in subjects


def test_options_are_webauthn_json(passkey_env: AppEnvironment) -> None:
    """Creation and request options in WebAuthn Level 3 JSON, with what the issue requires of each."""
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    assert user.add(authenticator).status_code == 201
    response = user.registration_options({"password": PASSWORD})
    public_key = body_of(response)["publicKey"]
    assert response.headers["Cache-Control"] == "no-store"
    assert len(unb64(public_key["challenge"])) >= 16
    assert public_key["rp"] == {"id": RP_ID, "name": "Mobile app"}
    handle = unb64(public_key["user"]["id"])
    assert len(handle) == 32
    assert user.email.encode() not in handle
    assert public_key["user"]["name"] == user.email
    selection = public_key["authenticatorSelection"]
    assert selection["residentKey"] == "required"
    assert selection["userVerification"] == "required"
    assert [item["id"] for item in public_key["excludeCredentials"]] == [
        b64(c) for c in authenticator.credentials
    ]
    assert {param["alg"] for param in public_key["pubKeyCredParams"]} >= {-7, -257}
    # The same handle every time: it is the account's.
    again = body_of(user.registration_options({"password": PASSWORD}))["publicKey"]
    assert again["user"]["id"] == public_key["user"]["id"]
    assert again["challenge"] != public_key["challenge"]

    request = authentication_options()["publicKey"]
    assert request["rpId"] == RP_ID
    assert request.get("allowCredentials", []) == []
    assert request["userVerification"] == "required"
    assert len(unb64(request["challenge"])) >= 16


def test_an_android_origin_is_accepted_and_a_wrong_one_refused(
    passkey_env: AppEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    """The origin derived from the Android app's fingerprint passes; any other origin is refused."""
    user = Client()
    android = SoftwareAuthenticator(ANDROID_ORIGIN, synced=True)
    assert "android:apk-key-hash:" + b64(ANDROID_FINGERPRINT) == ANDROID_ORIGIN
    assert user.add(android).status_code == 201
    assert sign_in(android.get(authentication_options())).status_code == 200

    phishing = SoftwareAuthenticator("https://auth.example.com.evil.example")
    assert user.add(phishing).status_code == 400
    with caplog.at_level(logging.INFO):
        refused = sign_in(
            android.get(authentication_options(), origin="android:apk-key-hash:" + b64(bytes(32)))
        )
    assert refused.status_code == 401
    assert body_of(refused)["code"] == "passkey_refused"
    assert any("reason=wrong_origin" in line for line in refusals(caplog))


def test_a_replayed_challenge_is_refused(
    passkey_env: AppEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    """An assertion works once: its challenge is used up by the first answer."""
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    assert user.add(authenticator).status_code == 201
    answer = authenticator.get(authentication_options())
    assert sign_in(answer).status_code == 200
    with caplog.at_level(logging.INFO):
        assert sign_in(answer).status_code == 401
    assert any(
        "reason=challenge_used" in line or "reason=unknown_challenge" in line for line in refusals(caplog)
    )
    # A registration challenge answers no sign-in, and an unknown one nothing.
    options = user.registration_options({"password": PASSWORD})
    stolen = authenticator.get({"publicKey": {**body_of(options)["publicKey"], "rpId": RP_ID}})
    assert sign_in(stolen).status_code == 401


def test_counters_backwards_refused_zero_accepted(
    passkey_env: AppEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    """A synced passkey's counter of 0 is fine every time; a bound key's counter must rise."""
    user = Client()
    synced = SoftwareAuthenticator(WEB_ORIGIN, synced=True)
    assert user.add(synced).status_code == 201
    for _ in range(3):
        assert sign_in(synced.get(authentication_options())).status_code == 200

    bound = SoftwareAuthenticator(WEB_ORIGIN, synced=False, aaguid=bytes(16))
    added = user.add(bound)
    assert added.status_code == 201
    assert body_of(added)["name"] == "Passkey"
    assert body_of(added)["provider"] is None
    first = sign_in(bound.get(authentication_options()))
    assert claims(body_of(first)["token"])["amr"] == ["hwk", "user", "mfa"]
    assert sign_in(bound.get(authentication_options())).status_code == 200
    with caplog.at_level(logging.INFO):
        assert sign_in(bound.get(authentication_options(), sign_count=1)).status_code == 401
        assert sign_in(bound.get(authentication_options(), sign_count=0)).status_code == 401
    assert sum("reason=sign_count" in line for line in refusals(caplog)) == 2
    assert sign_in(bound.get(authentication_options(), sign_count=7)).status_code == 200


def test_user_verification_off_is_refused(
    passkey_env: AppEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither a passkey created nor an assertion made without user verification is accepted."""
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    refused = user.add(authenticator, user_verified=False)
    assert refused.status_code == 400
    assert body_of(refused)["code"] == "invalid_passkey"
    assert user.list() == []
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    assert user.add(authenticator).status_code == 201
    with caplog.at_level(logging.INFO):
        assert sign_in(authenticator.get(authentication_options(), user_verified=False)).status_code == 401
    assert any("reason=user_not_verified" in line for line in refusals(caplog))


def test_presence_is_proven_before_adding(
    passkey_env: AppEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh sign-in is proof enough; later the password is needed, and a wrong one counts."""
    user = Client()
    assert user.registration_options({}).status_code == 200
    assert user.registration_options().status_code == 200
    monkeypatch.setattr(registration, "RECENT_SIGN_IN", timedelta(0))
    missing = user.registration_options({})
    assert missing.status_code == 400
    assert "password" in body_of(missing)["detail"]
    wrong = user.registration_options({"password": "not the password"})
    assert (wrong.status_code, body_of(wrong)["code"]) == (401, "invalid_credentials")
    record = account_service().store.login_record(user.email)
    assert record.throttle.consecutive_failures == 1
    assert user.registration_options({"password": PASSWORD}).status_code == 200
    assert call(passkeys_registration_options, "POST", {}).status_code == 401


def test_other_accounts_passkeys_are_not_found(passkey_env: AppEnvironment) -> None:
    """Another account's passkey, or an id that is none, is 404 not_found to rename or remove."""
    owner, other = Client(), Client()
    created = body_of(owner.add(SoftwareAuthenticator(WEB_ORIGIN)))
    for response in (
        other.rename(created["id"], "mine now"),
        other.remove(created["id"], {"password": PASSWORD}),
        owner.rename("x" * 43, "nothing"),
        owner.remove("not-an-id", {"password": PASSWORD}),
    ):
        assert (response.status_code, body_of(response)["code"]) == (404, "not_found")
    assert [p["name"] for p in owner.list()] == ["iCloud Keychain"]
    assert owner.rename(created["id"], "").status_code == 400
    assert owner.rename(created["id"], "a\u0000b").status_code == 400


def test_a_credential_belongs_to_one_account(passkey_env: AppEnvironment) -> None:
    """The same credential id cannot be added to a second account (409 passkey_exists)."""
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    first, second = Client(), Client()
    assert first.add(authenticator).status_code == 201
    (credential_id,) = authenticator.credentials
    clone = SoftwareAuthenticator(WEB_ORIGIN)
    options = body_of(second.registration_options({"password": PASSWORD}))
    duplicate = clone.create(options, credential_id=credential_id)
    response = call(passkeys_registration, "POST", {"credential": duplicate}, token=second.token)
    assert (response.status_code, body_of(response)["code"]) == (409, "passkey_exists")
    assert second.list() == []


def test_the_longest_credential_id_is_stored_under_its_digest(passkey_env: AppEnvironment) -> None:
    """A 1,023-byte credential id (more than a Table key holds) is added and signs in."""
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN, credential_id_bytes=1023)
    assert user.add(authenticator).status_code == 201
    assert sign_in(authenticator.get(authentication_options())).status_code == 200
    rows = [e for e in passkey_env.entities() if str(e["PartitionKey"]).startswith("passkey-")]
    assert len(rows) == 1
    assert len(str(rows[0]["RowKey"])) == len("passkey:") + 43


def test_the_number_of_passkeys_is_limited(passkey_env: AppEnvironment) -> None:
    """AUTH_MAX_PASSKEYS: the next one is 409 passkey_limit_reached until one is removed."""
    passkey_env.set(AUTH_MAX_PASSKEYS="1")
    user = Client()
    created = body_of(user.add(SoftwareAuthenticator(WEB_ORIGIN)))
    refused = user.registration_options({"password": PASSWORD})
    assert (refused.status_code, body_of(refused)["code"]) == (409, "passkey_limit_reached")
    assert user.remove(created["id"], {"password": PASSWORD}).status_code == 204
    assert user.add(SoftwareAuthenticator(WEB_ORIGIN)).status_code == 201


def test_a_challenge_expires(passkey_env: AppEnvironment) -> None:
    """AUTH_PASSKEY_CHALLENGE_SECONDS: an answer after it is refused, and the cleanup removes the row."""
    from shared.operations.cleanup import run_cleanup
    from shared.settings import get_settings

    passkey_env.set(AUTH_PASSKEY_CHALLENGE_SECONDS="1")
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    assert user.add(authenticator).status_code == 201
    options = authentication_options()
    unanswered = authentication_options()
    assert unanswered["publicKey"]["timeout"] == 1000
    time.sleep(1.5)
    assert sign_in(authenticator.get(options)).status_code == 401
    challenges = [e for e in passkey_env.entities() if str(e["PartitionKey"]).startswith(PARTITION_PREFIX)]
    assert len(challenges) >= 1
    report = run_cleanup(get_settings(), now=datetime.now(UTC) + timedelta(seconds=5))
    assert report.deleted["passkey_challenges"] == len(challenges)
    assert not [e for e in passkey_env.entities() if str(e["PartitionKey"]).startswith(PARTITION_PREFIX)]


def test_failed_assertions_count_against_the_address(passkey_env: AppEnvironment) -> None:
    """AUTH_RATE_LIMIT_LOGIN counts passkey sign-ins from one address, as it counts password logins."""
    passkey_env.set(AUTH_RATE_LIMIT_LOGIN="3/300")
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    assert user.add(authenticator).status_code == 201
    for _ in range(3):
        wrong = authenticator.get(authentication_options(), user_verified=False)
        assert sign_in(wrong, client="203.0.113.9").status_code == 401
    limited = sign_in(authenticator.get(authentication_options()), client="203.0.113.9")
    assert (limited.status_code, body_of(limited)["code"]) == (429, "too_many_attempts")
    assert sign_in(authenticator.get(authentication_options()), client="198.51.100.4").status_code == 200


def test_without_a_relying_party_every_passkey_route_is_not_found(app_env: AppEnvironment) -> None:
    """Passkeys off: every passkey route and both association files are 404; nothing else changes."""
    user = Client()
    for function, method in (
        (passkeys_registration_options, "POST"),
        (passkeys_registration, "POST"),
        (passkeys_authentication_options, "POST"),
        (passkeys_authentication, "POST"),
        (passkeys, "GET"),
        (passkey, "PATCH"),
        (passkey, "DELETE"),
        (apple_app_site_association, "GET"),
        (assetlinks, "GET"),
    ):
        response = call(function, method, {}, token=user.token, route_params={"id": "x"})
        assert (response.status_code, body_of(response)["code"]) == (404, "not_found"), function
    assert body_of(call(me, "GET", token=user.token))["passkeys"] == 0


def test_the_association_files(passkey_env: AppEnvironment) -> None:
    """Both files from the settings: the iOS app ids, and each Android package with its fingerprint."""
    apple = call(apple_app_site_association, "GET")
    assert (apple.status_code, apple.mimetype) == (200, "application/json")
    assert body_of(apple) == {"webcredentials": {"apps": [IOS_APP_ID]}}
    android = call(assetlinks, "GET")
    assert (android.status_code, android.mimetype) == (200, "application/json")
    (statement,) = body_of(android)
    assert statement["relation"] == [
        "delegate_permission/common.handle_all_urls",
        "delegate_permission/common.get_login_creds",
    ]
    assert statement["target"] == {
        "namespace": "android_app",
        "package_name": ANDROID_PACKAGE,
        "sha256_cert_fingerprints": [":".join(f"{b:02X}" for b in ANDROID_FINGERPRINT)],
    }


def test_a_second_factor_must_be_shown_to_add_one(passkey_env: AppEnvironment) -> None:
    """With TOTP on, a session not signed in with it needs a code beside the password; a passkey
    then signs in without the second step, as a complete (mfa) sign-in."""
    from shared.accounts.service import account_service
    from tests.operations.test_admin import enrol

    user = Client.__new__(Client)
    user.email = f"pk{time.monotonic_ns()}@example.com"
    user_id, enrolled_token, _, recovery_codes = enrol(user.email)
    user.token = enrolled_token
    assert user.registration_options({}).status_code == 200  # signed in with the second factor just now
    # A session of this account proven by the password alone (as one kept from before the second factor
    # was turned on; a password change keeps the second factor in amr, so it cannot make one).
    service = account_service()
    account = service.store.account(user_id)
    assert account is not None
    user.token = service.start_session(user_id, user.email, account.session_version, ("pwd",)).token.token
    assert user.registration_options({}).status_code == 400
    needs_code = user.registration_options({"password": PASSWORD})
    assert (needs_code.status_code, "code" in body_of(needs_code)["detail"]) == (400, True)
    options = user.registration_options({"password": PASSWORD, "code": recovery_codes[0]})
    assert options.status_code == 200
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    credential = authenticator.create(body_of(options))
    assert (
        call(passkeys_registration, "POST", {"credential": credential}, token=user.token).status_code == 201
    )
    signed_in = sign_in(authenticator.get(authentication_options()))
    assert signed_in.status_code == 200
    assert "mfa" in claims(body_of(signed_in)["token"])["amr"]  # type: ignore[operator]


def test_deleting_the_account_deletes_its_passkeys(passkey_env: AppEnvironment) -> None:
    """DELETE /api/me leaves no credential row behind (they live outside the account's partition)."""
    user = Client()
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    assert user.add(authenticator).status_code == 201
    assert user.add(SoftwareAuthenticator(WEB_ORIGIN, synced=False)).status_code == 201
    assert call(me, "DELETE", {"password": PASSWORD}, token=user.token).status_code == 204
    assert not [e for e in passkey_env.entities() if str(e["PartitionKey"]).startswith("passkey-")]
    assert sign_in(authenticator.get(authentication_options())).status_code == 401
