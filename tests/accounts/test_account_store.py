"""The account store against a real Azurite Table service."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.accounts.store import (
    Account,
    AccountStore,
    Credentials,
    email_row_key,
    encode_key,
    partition_for_email,
    partition_for_user_id,
)
from shared.errors import ConflictError, EmailTaken, InvalidRequest
from shared.settings import get_settings
from shared.storage import table_client
from tests.conftest import AppEnvironment

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"


@pytest.fixture
def store(app_env: AppEnvironment) -> AccountStore:
    return AccountStore(get_settings().storage)


class TestKeys:
    """Every valid email maps to keys Table Storage accepts."""

    @pytest.mark.parametrize("char", ["/", "\\", "#", "?", "%", "\x00", "\x1f", "\x7f", "\x85"])
    def test_forbidden_characters_are_encoded(self, char: str) -> None:
        encoded = encode_key(f"a{char}b")
        assert encoded == f"a%{ord(char):02X}b"
        assert not set(encoded) & set("/\\#?\x00\x1f\x7f\x85")

    def test_encoding_is_reversible(self) -> None:
        """ "%" is encoded too, so "a%2Fb" and "a/b" stay different keys."""
        assert encode_key("a%2Fb") != encode_key("a/b")

    def test_user_id_carries_its_partition(self, store: AccountStore) -> None:
        account = store.create("carol@example.com", HASH)
        assert account.user_id.startswith("custom:")
        assert partition_for_user_id(account.user_id) == partition_for_email("carol@example.com")

    @pytest.mark.parametrize(
        "user_id",
        ["", "custom:", "Custom:abc", "custom:zz" + "a" * 22, "custom:0a" + "a" * 21, "sid:0a" + "a" * 22],
    )
    def test_foreign_user_ids_have_no_partition(self, user_id: str) -> None:
        assert partition_for_user_id(user_id) is None

    def test_longest_valid_email_fits(self, store: AccountStore) -> None:
        """64 characters of "/" in the local part, each encoded to 3, still fit in a RowKey."""
        email = "/" * 64 + "@" + "d" * 60 + "." + "e" * 60 + "." + "f" * 60 + ".com"
        assert len(email_row_key(email)) <= 512
        store.create(email, HASH)
        assert store.credentials(email) is not None

    def test_key_too_long_for_storage_is_a_bad_request(self) -> None:
        with pytest.raises(InvalidRequest):
            email_row_key("%" * 200 + "@example.com")


class TestCreate:
    """Accounts are created atomically, exactly once per email."""

    def test_created_account_reads_back_both_ways(self, store: AccountStore) -> None:
        now = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
        account = store.create("a/b#c?d@example.com", HASH, now=now)
        credentials = store.credentials("a/b#c?d@example.com")
        assert credentials is not None
        assert (credentials.user_id, credentials.email, credentials.password_hash) == (
            account.user_id,
            "a/b#c?d@example.com",
            HASH,
        )
        assert store.account(account.user_id) == account
        assert account.created_at == now

    def test_schema_is_two_rows_in_one_partition(self, store: AccountStore, app_env: AppEnvironment) -> None:
        """The documented schema, read with the bare SDK."""
        account = store.create("dave@example.com", HASH)
        rows = {row["RowKey"]: row for row in app_env.entities()}
        assert set(rows) == {"email:dave@example.com", f"user:{account.user_id}"}
        assert {row["PartitionKey"] for row in rows.values()} == {partition_for_email("dave@example.com")}
        assert rows["email:dave@example.com"]["UserId"] == account.user_id
        assert rows["email:dave@example.com"]["PasswordHash"] == HASH
        assert rows[f"user:{account.user_id}"]["Email"] == "dave@example.com"
        assert "PasswordHash" not in rows[f"user:{account.user_id}"]

    def test_duplicate_email_stores_nothing_more(self, store: AccountStore, app_env: AppEnvironment) -> None:
        """The second insert fails whole: no orphan account row is left behind."""
        first = store.create("erin@example.com", HASH)
        with pytest.raises(EmailTaken):
            store.create("erin@example.com", HASH)
        rows = app_env.entities()
        assert len(rows) == 2
        assert {row["RowKey"] for row in rows} == {"email:erin@example.com", f"user:{first.user_id}"}

    def test_unknown_lookups_are_none(self, store: AccountStore) -> None:
        assert store.credentials("nobody@example.com") is None
        assert store.account("custom:00" + "A" * 22) is None
        assert store.account("not-ours") is None


class TestPasswordHashUpdate:
    """Hash updates are guarded by the row's ETag."""

    def test_update_with_fresh_etag(self, store: AccountStore) -> None:
        store.create("fay@example.com", HASH)
        record = store.login_record("fay@example.com")
        credentials = record.credentials
        assert credentials is not None
        assert store.update_login(record, throttle=record.throttle, password_hash="$argon2id$new")
        updated = store.credentials("fay@example.com")
        assert updated is not None
        assert updated.password_hash == "$argon2id$new"
        assert updated.user_id == credentials.user_id

    def test_stale_etag_writes_nothing(self, store: AccountStore) -> None:
        """Two writers from one read: the second loses and does not overwrite the first."""
        store.create("gil@example.com", HASH)
        read = store.login_record("gil@example.com")
        assert store.update_login(read, throttle=read.throttle, password_hash="$argon2id$first")
        assert not store.update_login(read, throttle=read.throttle, password_hash="$argon2id$second")
        final = store.credentials("gil@example.com")
        assert final is not None
        assert final.password_hash == "$argon2id$first"


def read_both(store: AccountStore, email: str) -> tuple[Account, Credentials]:
    credentials = store.credentials(email)
    assert credentials is not None
    account = store.account(credentials.user_id)
    assert account is not None
    return account, credentials


class TestSessionState:
    """Session versions and the two-row updates, each guarded by ETags."""

    def test_revoking_moves_both_rows_on(self, store: AccountStore) -> None:
        store.create("ivan@example.com", HASH)
        account, _ = read_both(store, "ivan@example.com")
        store.revoke_sessions(account)
        account, credentials = read_both(store, "ivan@example.com")
        assert account.session_version == credentials.session_version == 1

    def test_stale_password_change_is_a_conflict(self, store: AccountStore) -> None:
        """Two changes from the same read: the first wins, the second writes nothing."""
        store.create("jill@example.com", HASH)
        account, credentials = read_both(store, "jill@example.com")
        assert store.change_password(account, credentials, "$argon2id$first") == 1
        with pytest.raises(ConflictError):
            store.change_password(account, credentials, "$argon2id$second")
        account, credentials = read_both(store, "jill@example.com")
        assert credentials.password_hash == "$argon2id$first"
        assert account.session_version == credentials.session_version == 1

    def test_rehash_racing_a_password_change_loses(self, store: AccountStore) -> None:
        """A login's re-hash read before a password change must not restore the old password."""
        store.create("kurt@example.com", HASH)
        record = store.login_record("kurt@example.com")
        account, credentials = read_both(store, "kurt@example.com")
        store.change_password(account, credentials, "$argon2id$changed")
        assert not store.update_login(
            record, throttle=record.throttle, password_hash="$argon2id$rehashed-old"
        )
        assert read_both(store, "kurt@example.com")[1].password_hash == "$argon2id$changed"

    def test_stale_delete_is_a_conflict(self, store: AccountStore) -> None:
        store.create("lena@example.com", HASH)
        account, credentials = read_both(store, "lena@example.com")
        store.revoke_sessions(account)
        with pytest.raises(ConflictError):
            store.delete(account, credentials)
        fresh_account, fresh_credentials = read_both(store, "lena@example.com")
        store.delete(fresh_account, fresh_credentials)
        assert store.credentials("lena@example.com") is None
        assert store.account(fresh_account.user_id) is None

    def test_a_lost_revocation_race_still_revokes(self, store: AccountStore) -> None:
        store.create("mona@example.com", HASH)
        account, _ = read_both(store, "mona@example.com")
        store.revoke_sessions(account)
        store.revoke_sessions(account)  # stale: the version already moved on, which is what was asked
        assert read_both(store, "mona@example.com")[0].session_version == 1


def test_one_client_per_process(app_env: AppEnvironment) -> None:
    """The TableClient is created once and reused (and the table created once)."""
    settings = get_settings().storage
    assert table_client(settings) is table_client(settings)
