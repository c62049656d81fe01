"""Moving off Azure Mobile Services: legacy hashes, the importer, and legacy tokens."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2
import jwt
import pytest

import login
import logout
import me
import refresh
import register
from shared.accounts.mobile_services import (
    LegacyTokenSettings,
    legacy_hash,
    legacy_stored_hash,
    verify_legacy_password,
    verify_legacy_token,
)
from shared.accounts.passwords import Argon2Parameters, PasswordHasher, Verification
from shared.accounts.store import AccountStore, partition_for_email
from shared.settings import get_settings
from shared.tokens.access_tokens import ZUMO_ISSUER, zumo_signing_key
from tests.conftest import VECTORS, AppEnvironment, http_request, problem
from tools.emulators.azurite import PROJECT_ROOT
from tools.import_accounts import command as import_accounts
from tools.import_accounts import partitions as import_partitions

LEGACY = VECTORS["legacy_pbkdf2_hash"]
MASTER_KEY = "mobile services master key 123456"


def mobile_services_hash(password: str) -> tuple[str, str]:
    """A salt and hash made as the jwthelper script made them, with hashlib (not the code under test)."""
    salt = base64.b64encode(secrets.token_bytes(32)).decode()
    derived = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode("ascii"), 1000, 32)
    return salt, base64.b64encode(derived).decode()


def export_row(legacy_id: Any, email: str, password: str | None = None) -> dict[str, Any]:
    if password is None:
        salt = base64.b64encode(secrets.token_bytes(32)).decode()
        hashed = base64.b64encode(secrets.token_bytes(32)).decode()
    else:
        salt, hashed = mobile_services_hash(password)
    return {
        "id": legacy_id,
        "email": email,
        "password": hashed,
        "salt": salt,
        "createDate": "2015-03-04T05:06:07Z",
    }


#: Settings under which AUTH_REQUIRE_VERIFIED_EMAIL is valid; no mail is sent by these tests.
MAIL_OFF_BUT_VALID = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AUTH_MAIL_SMTP_HOST": "127.0.0.1",
    "AUTH_MAIL_SMTP_SECURITY": "none",
    "AUTH_MAIL_FROM": "no-reply@example.com",
}


def run_import(app_env: AppEnvironment, *args: str) -> tuple[int, str, str]:
    """The importer as an operator runs it: a separate process, settings from the environment."""
    completed = subprocess.run(
        [sys.executable, "-m", "tools.import_accounts", *args, "--settings", "/nonexistent"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return completed.returncode, completed.stdout, completed.stderr


def log_in(email: str, password: str) -> Any:
    return login.main(http_request("POST", "login", {"email": email, "password": password}))


def stored_hash_of(app_env: AppEnvironment, email: str) -> str:
    credentials = AccountStore(get_settings().storage).credentials(email)
    assert credentials is not None
    return credentials.password_hash


class TestLegacyHashes:
    """The Mobile Services PBKDF2 format, verified and upgraded."""

    def test_vector(self) -> None:
        assert legacy_hash(LEGACY["password"], LEGACY["salt"]) == LEGACY["hash"]

    def test_verification_matches_hashlib(self) -> None:
        salt, hashed = mobile_services_hash("my old password")
        stored = legacy_stored_hash(salt, hashed)
        assert verify_legacy_password(stored, "my old password")
        assert not verify_legacy_password(stored, "my old passworD")
        assert not verify_legacy_password(stored, "\ud800")

    def test_hasher_asks_for_an_upgrade(self) -> None:
        hasher = PasswordHasher(Argon2Parameters())
        stored = legacy_stored_hash(LEGACY["salt"], LEGACY["hash"])
        assert hasher.verify(stored, "password1") is Verification.OK_NEEDS_REHASH
        assert hasher.verify(stored, "password2") is Verification.WRONG

    @pytest.mark.parametrize(
        ("salt", "hashed", "problem_text"),
        [
            ("", LEGACY["hash"], "salt is empty"),
            ("not base64!", LEGACY["hash"], "salt is not valid base64"),
            (LEGACY["salt"], "AAAA", "hash is 3 bytes"),
            (LEGACY["salt"], "%%%", "hash is not valid base64"),
        ],
    )
    def test_bad_stored_parts(self, salt: str, hashed: str, problem_text: str) -> None:
        with pytest.raises(ValueError, match=problem_text):
            legacy_stored_hash(salt, hashed)


@pytest.fixture
def store(app_env: AppEnvironment) -> AccountStore:
    return AccountStore(get_settings().storage)


class TestLegacyLogin:
    """An imported account logs in with its old password, keeps its user id, and is upgraded."""

    def test_login_upgrades_the_hash_and_keeps_the_user_id(
        self, app_env: AppEnvironment, store: AccountStore
    ) -> None:
        salt, hashed = mobile_services_hash("old but uncommon password")
        created = datetime(2015, 3, 4, tzinfo=UTC)
        store.import_legacy("Custom:42", "old@example.com", legacy_stored_hash(salt, hashed), created)

        response = log_in("Old@Example.com", "old but uncommon password")
        assert response.status_code == 200
        body = json.loads(response.get_body())
        assert body["userId"] == "Custom:42"
        upgraded = stored_hash_of(app_env, "old@example.com")
        assert argon2.extract_parameters(upgraded).type is argon2.Type.ID
        assert log_in("old@example.com", "old but uncommon password").status_code == 200
        assert stored_hash_of(app_env, "old@example.com") == upgraded, "upgraded once"

        profile = me.main(http_request("GET", "me", token=body["token"]))
        assert json.loads(profile.get_body()) == {
            "userId": "Custom:42",
            "email": "old@example.com",
            "emailVerified": False,
            "createdAt": "2015-03-04T00:00:00Z",
            "mfa": {"totp": False, "recoveryCodesLeft": 0},
            "passkeys": 0,
        }

    def test_wrong_password_is_the_same_401(self, app_env: AppEnvironment, store: AccountStore) -> None:
        salt, hashed = mobile_services_hash("old but uncommon password")
        store.import_legacy(
            "Custom:43", "legacy@example.com", legacy_stored_hash(salt, hashed), datetime.now(UTC)
        )
        wrong = log_in("legacy@example.com", "not the password")
        unknown = log_in("nobody@example.com", "not the password")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.get_body() == unknown.get_body()
        assert stored_hash_of(app_env, "legacy@example.com").startswith("$mobileservices-pbkdf2-sha1$")


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows))
    return path


class TestImporter:
    """python -m tools.import_accounts."""

    def test_ten_thousand_rows_idempotent_under_rerun_and_concurrent_logins(
        self, app_env: AppEnvironment, tmp_path: Path
    ) -> None:
        passwords = {f"live{i}@example.com": f"old password number {i}" for i in range(8)}
        rows = [export_row(i, f"user{i}@example.com") for i in range(10_000 - len(passwords))]
        rows += [export_row(f"live-{i}", email, pw) for i, (email, pw) in enumerate(passwords.items())]
        export = write_json(tmp_path / "export.json", rows)

        status, out, err = run_import(app_env, str(export))
        assert status == 0, out + err
        assert "imported: 10000" in out
        assert "account" in err, "progress is reported on stderr"

        stop = threading.Event()
        login_statuses: list[int] = []

        def keep_logging_in() -> None:
            while not stop.is_set():
                for email, password in passwords.items():
                    login_statuses.append(log_in(email, password).status_code)

        logger = threading.Thread(target=keep_logging_in)
        logger.start()
        try:
            status, out, err = run_import(app_env, str(export))
        finally:
            stop.set()
            logger.join()
        assert status == 0, out + err
        assert "imported: 0" in out
        assert "skipped as duplicate: 10000 (already imported: 10000" in out
        assert login_statuses
        assert set(login_statuses) == {200}
        for email in passwords:
            assert stored_hash_of(app_env, email).startswith("$argon2id$"), "the re-run overwrote no upgrade"
        assert len(app_env.entities()) == 3 * 10_000  # login row, account row, alias row

        status, out, _ = run_import(app_env, "--stats")
        assert status == 0
        assert "accounts: 10000" in out
        assert "with Mobile Services hashes, not yet upgraded: 9992" in out

    def test_bad_rows_are_reported_not_fatal(self, app_env: AppEnvironment, tmp_path: Path) -> None:
        good = export_row(1, "good@example.com", "a fine old password")
        missing_salt = export_row(2, "nosalt@example.com") | {"salt": ""}
        bad_base64 = export_row(3, "badb64@example.com") | {"password": "not*base64"}
        bad_email = export_row(4, "not an email")
        case_duplicate = export_row(5, "GOOD@example.com")
        duplicate_id = export_row(1, "other@example.com")
        short_hash = export_row(6, "short@example.com") | {"password": "AAAA"}
        no_id = export_row(None, "noid@example.com")
        bad_date = export_row(7, "date@example.com") | {"createDate": "yesterday"}
        rows: list[Any] = [
            good,
            missing_salt,
            bad_base64,
            bad_email,
            case_duplicate,
            duplicate_id,
            short_hash,
        ]
        rows += [no_id, bad_date, "not an object", export_row(8, "fine@example.com")]
        status, out, _ = run_import(app_env, str(write_json(tmp_path / "bad.json", rows)))
        assert status == 1, out
        assert "imported: 2" in out
        assert "rejected: 9" in out
        for expected in [
            "row 2: missing salt",
            "row 3: hash is not valid base64",
            "row 4: invalid email",
            "row 5: duplicate email (first seen in row 1)",
            "row 6: duplicate id (first seen in row 1)",
            "row 7: hash is 3 bytes, not 32",
            "row 8: missing id",
            "row 9: createDate is not a date",
            "row 10: missing id",
        ]:
            assert expected in out
        assert log_in("good@example.com", "a fine old password").status_code == 200
        emails = {e["Email"] for e in app_env.entities() if e["RowKey"].startswith("email:")}
        assert emails == {"good@example.com", "fine@example.com"}, "nothing of a bad row was written"

    def test_csv_with_a_column_mapping(self, app_env: AppEnvironment, tmp_path: Path) -> None:
        row = export_row("abc", "csv@example.com", "csv old password!")
        path = tmp_path / "accounts.csv"
        with path.open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["Identifier", "EmailAddress", "PasswordHash", "Salt", "Created"])
            writer.writerow([row["id"], row["email"], row["password"], row["salt"], row["createDate"]])
        maps = ["--map", "id=Identifier", "--map", "email=EmailAddress", "--map", "password=PasswordHash"]
        maps += ["--map", "salt=Salt", "--map", "createDate=Created"]
        status, out, _ = run_import(app_env, str(path), *maps)
        assert status == 0, out
        response = log_in("csv@example.com", "csv old password!")
        assert json.loads(response.get_body())["userId"] == "Custom:abc"

    @pytest.mark.parametrize("flag", [(), ("--emails-verified",)], ids=["default", "emails-verified"])
    def test_imported_emails_are_unverified_unless_told(
        self, app_env: AppEnvironment, tmp_path: Path, flag: tuple[str, ...]
    ) -> None:
        """Imported accounts are unverified; --emails-verified marks both their rows verified."""
        path = write_json(tmp_path / "v.json", [export_row("v1", "verified@example.com", "old password 1")])
        status, out, _ = run_import(app_env, str(path), *flag)
        assert status == 0, out
        rows = [e for e in app_env.entities() if e["PartitionKey"].startswith("acct-")]
        assert sorted(e["RowKey"] for e in rows) == ["email:verified@example.com", "user:Custom:v1"]
        assert {e["EmailVerified"] for e in rows} == {bool(flag)}
        app_env.set(AUTH_REQUIRE_VERIFIED_EMAIL="true", **MAIL_OFF_BUT_VALID)
        expected = 200 if flag else 403
        assert log_in("verified@example.com", "old password 1").status_code == expected

    def test_never_overwrites_an_account_registered_since(
        self, app_env: AppEnvironment, tmp_path: Path
    ) -> None:
        assert (
            register.main(
                http_request("POST", "register", {"email": "new@example.com", "password": "registered here"})
            ).status_code
            == 201
        )
        status, out, _ = run_import(
            app_env, str(write_json(tmp_path / "e.json", [export_row(9, "new@example.com", "old pw 12345")]))
        )
        assert status == 0
        assert "row 1: new@example.com already has another account" in out
        assert log_in("new@example.com", "registered here").status_code == 200
        assert log_in("new@example.com", "old pw 12345").status_code == 401

    def test_batch_conflict_falls_back_to_single_rows(self, store: AccountStore) -> None:
        """A registration that lands between the importer's read and write costs only that row."""
        partition = partition_for_email("same0@example.com")
        emails = [f"same{i}@example.com" for i in range(2000)]
        emails = [email for email in emails if partition_for_email(email) == partition][:3]
        accounts = [
            import_accounts.parse_account(i, export_row(i, email), {}) for i, email in enumerate(emails)
        ]
        store.create(accounts[1].email, "$argon2id$someone-registered")
        # Read-then-write race: the importer decides from a snapshot taken before the registration.
        original = store.existing_logins
        store.existing_logins = lambda partition: {}  # type: ignore[method-assign]
        progress: list[int] = []
        try:
            result = import_partitions.account_phase(
                store,
                partition,
                [(a, True) for a in accounts],
                emails_verified=False,
                progress=progress.append,
            )
        finally:
            store.existing_logins = original  # type: ignore[method-assign]
        assert result.imported == 2, "one transaction of three, refused, then one by one"
        assert [row for row, _ in result.email_taken] == [1]
        assert sum(progress) == 3
        taken = store.credentials(accounts[1].email)
        assert taken is not None
        assert taken.password_hash == "$argon2id$someone-registered"


class TestLegacyTokens:
    """Mobile Services tokens of installed apps, accepted only with AUTH_LEGACY_MASTER_KEY."""

    def v2_token(self, user_id: str, expires: datetime, master: str = MASTER_KEY) -> str:
        claims = {
            "exp": int(expires.timestamp()),
            "iss": ZUMO_ISSUER,
            "ver": 2,
            "aud": "Custom",
            "uid": user_id,
        }
        return jwt.encode(claims, zumo_signing_key(master), headers={"kid": "0"})

    def v1_token(self, user_id: str, expires: datetime) -> str:
        """The copied script: kid 0 as a number, exp in milliseconds; built by hand as it was."""
        header = b'{"alg":"HS256","typ":"JWT","kid":0}'
        claims = {
            "exp": int(expires.timestamp() * 1000),
            "iss": ZUMO_ISSUER,
            "ver": 2,
            "aud": "Custom",
            "uid": user_id,
        }

        def b64(data: bytes) -> bytes:
            return base64.urlsafe_b64encode(data).rstrip(b"=")

        signing_input = b64(header) + b"." + b64(json.dumps(claims).encode())
        signature = hmac.new(zumo_signing_key(MASTER_KEY), signing_input, hashlib.sha256).digest()
        return (signing_input + b"." + b64(signature)).decode()

    @pytest.fixture
    def legacy_user(self, app_env: AppEnvironment, store: AccountStore) -> str:
        salt, hashed = mobile_services_hash("whatever it was")
        store.import_legacy(
            "Custom:77", "tok@example.com", legacy_stored_hash(salt, hashed), datetime.now(UTC)
        )
        app_env.set(AUTH_LEGACY_MASTER_KEY=MASTER_KEY)
        return "Custom:77"

    @pytest.mark.parametrize("version", ["v1", "v2"])
    def test_accepted_and_refreshed_into_the_current_format(self, legacy_user: str, version: str) -> None:
        make = self.v1_token if version == "v1" else self.v2_token
        token = make(legacy_user, datetime.now(UTC) + timedelta(days=10))
        assert me.main(http_request("GET", "me", token=token)).status_code == 200
        response = refresh.main(http_request("POST", "refresh", token=token))
        assert response.status_code == 200
        fresh = json.loads(response.get_body())["token"]
        assert jwt.get_unverified_header(fresh)["kid"] != "0"
        claims = jwt.decode(fresh, get_settings().tokens.keys[0], algorithms=["HS256"], audience=ZUMO_ISSUER)
        assert claims["sub"] == legacy_user

    def test_refused_without_the_legacy_key(self, legacy_user: str, app_env: AppEnvironment) -> None:
        app_env.set(AUTH_LEGACY_MASTER_KEY=None)
        token = self.v2_token(legacy_user, datetime.now(UTC) + timedelta(days=10))
        assert problem(me.main(http_request("GET", "me", token=token)))["code"] == "invalid_token"

    @pytest.mark.parametrize(
        "case", ["expired", "beyond max age", "wrong master key", "v1 expired in ms", "revoked by logout"]
    )
    def test_refused(self, legacy_user: str, case: str) -> None:
        now = datetime.now(UTC)
        token = {
            "expired": lambda: self.v2_token(legacy_user, now - timedelta(hours=1)),
            "beyond max age": lambda: self.v2_token(legacy_user, now + timedelta(days=31)),
            "wrong master key": lambda: self.v2_token(
                legacy_user, now + timedelta(days=1), "another key entirely"
            ),
            "v1 expired in ms": lambda: self.v1_token(legacy_user, now - timedelta(hours=1)),
            "revoked by logout": lambda: self.v2_token(legacy_user, now + timedelta(days=1)),
        }[case]()
        if case == "revoked by logout":
            assert logout.main(http_request("POST", "logout", token=token)).status_code == 204
        assert problem(me.main(http_request("GET", "me", token=token)))["code"] == "invalid_token"

    def test_max_age_is_a_setting(self, legacy_user: str, app_env: AppEnvironment) -> None:
        token = self.v2_token(legacy_user, datetime.now(UTC) + timedelta(days=60))
        assert me.main(http_request("GET", "me", token=token)).status_code == 401
        app_env.set(AUTH_LEGACY_MAX_AGE_DAYS="90")
        assert me.main(http_request("GET", "me", token=token)).status_code == 200

    def test_verifier_directly(self) -> None:
        settings = LegacyTokenSettings.from_master_key(MASTER_KEY, timedelta(days=30))
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        verified = verify_legacy_token(settings, self.v1_token("Custom:1", expires))
        assert verified.user_id == "Custom:1"
        assert verified.expires_at == expires, "milliseconds read as milliseconds"
