"""Argon2id hashing, verification outcomes and the password policy."""

from __future__ import annotations

import argon2
import pytest

from shared.accounts.passwords import (
    Argon2Parameters,
    PasswordHasher,
    PasswordPolicy,
    Verification,
    check_password_policy,
    is_common_password,
)
from shared.errors import WeakPassword

DEFAULTS = Argon2Parameters()


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(DEFAULTS)


class TestHashing:
    """Hashes are Argon2id PHC strings at or above the OWASP minimum."""

    def test_default_parameters_meet_owasp(self) -> None:
        """m=19 MiB, t=2, p=1 is the OWASP floor; the defaults are at least that."""
        assert DEFAULTS.memory_kib >= 19_456
        assert DEFAULTS.time_cost >= 2
        assert DEFAULTS.parallelism >= 1
        assert DEFAULTS.meets_owasp_minimum()

    @pytest.mark.parametrize(
        ("memory", "time", "ok"),
        [(19_456, 2, True), (47_104, 1, True), (7_168, 5, True), (19_455, 2, False), (47_104, 0, False)],
    )
    def test_owasp_minimum(self, memory: int, time: int, ok: bool) -> None:
        """The OWASP table's pairs pass; anything weaker fails."""
        assert Argon2Parameters(memory_kib=memory, time_cost=time).meets_owasp_minimum() is ok

    def test_hash_is_argon2id_phc_with_the_parameters(self, hasher: PasswordHasher) -> None:
        """The stored form is self-describing: algorithm, version, costs, salt, digest."""
        stored = hasher.hash("correct horse battery")
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        params = argon2.extract_parameters(stored)
        assert params.type is argon2.Type.ID
        assert params.salt_len == 16
        assert params.hash_len == 32

    def test_salts_differ(self, hasher: PasswordHasher) -> None:
        """The same password hashes differently every time."""
        assert hasher.hash("correct horse battery") != hasher.hash("correct horse battery")


class TestVerification:
    """verify() says ok, ok-but-rehash or wrong; nothing else escapes."""

    def test_right_password(self, hasher: PasswordHasher) -> None:
        assert hasher.verify(hasher.hash("correct horse battery"), "correct horse battery") is Verification.OK

    def test_wrong_password(self, hasher: PasswordHasher) -> None:
        result = hasher.verify(hasher.hash("correct horse battery"), "correct horse batterY")
        assert result is Verification.WRONG
        assert not result.ok

    @pytest.mark.parametrize("stored", ["", "not a hash", "$argon2id$v=19$m=1,t=1,p=1$xx$yy", "$2b$12$abc"])
    def test_garbage_hash_is_wrong_not_an_error(self, hasher: PasswordHasher, stored: str) -> None:
        """A corrupt stored value counts as a wrong password."""
        assert hasher.verify(stored, "correct horse battery") is Verification.WRONG

    def test_outdated_parameters_need_rehash(self, hasher: PasswordHasher) -> None:
        """A hash made with other costs verifies and asks to be re-hashed."""
        stronger = PasswordHasher(Argon2Parameters(memory_kib=24_576, time_cost=2))
        stored = hasher.hash("correct horse battery")
        assert stronger.verify(stored, "correct horse battery") is Verification.OK_NEEDS_REHASH
        assert stronger.verify(stored, "wrong horse battery") is Verification.WRONG

    def test_unicode_forms_are_one_password(self, hasher: PasswordHasher) -> None:
        """NFKC: a precomposed and a decomposed "é" are the same password."""
        stored = hasher.hash("caf\u00e9 au lait!")
        assert hasher.verify(stored, "cafe\u0301 au lait!") is Verification.OK

    def test_verify_nothing_costs_a_real_verification(self, hasher: PasswordHasher) -> None:
        """The dummy hash carries the current costs, so it takes as long as a real check."""
        params = argon2.extract_parameters(hasher._dummy_hash)
        assert (params.memory_cost, params.time_cost, params.parallelism) == (19_456, 2, 1)
        assert hasher.verify(hasher._dummy_hash, "anything at all") is Verification.WRONG
        hasher.verify_nothing("anything at all")


class TestPolicy:
    """Length bounds and the common-password list; no composition rules."""

    policy = PasswordPolicy()

    def test_common_list_is_large(self) -> None:
        """The list has at least 10,000 entries (zxcvbn ships 30,000)."""
        from shared.accounts.passwords import _common_passwords

        assert len(_common_passwords()) >= 10_000

    @pytest.mark.parametrize("password", ["password1", "Password1", "PASSWORD1", "qwertyuiop", "iloveyou"])
    def test_common_passwords_are_refused(self, password: str) -> None:
        """Case does not hide a common password."""
        assert is_common_password(password)
        with pytest.raises(WeakPassword, match="commonly used"):
            check_password_policy(self.policy, password)

    @pytest.mark.parametrize("password", ["correct horse battery", "zz8#Ql-m1", "ноль один два"])
    def test_uncommon_passwords_pass(self, password: str) -> None:
        """Any long-enough uncommon password passes: no composition rules."""
        check_password_policy(self.policy, password)

    def test_too_short(self) -> None:
        with pytest.raises(WeakPassword, match="at least 8"):
            check_password_policy(self.policy, "x7#kQ2m")

    def test_too_long(self) -> None:
        with pytest.raises(WeakPassword, match="at most 256"):
            check_password_policy(self.policy, "x" * 257)

    def test_length_is_counted_in_characters_not_bytes(self) -> None:
        """Eight emoji are eight characters."""
        check_password_policy(self.policy, "\U0001f600\U0001f601\U0001f602\U0001f603" * 2)

    def test_configurable_bounds(self) -> None:
        """A stricter policy applies its own bounds."""
        with pytest.raises(WeakPassword, match="at least 12"):
            check_password_policy(PasswordPolicy(min_length=12, max_length=64), "uncommon-pw")


class TestContextWords:
    """No password built on the service's own words or the account's email (ASVS 6.2.11)."""

    policy = PasswordPolicy(context_words=("Contoso", "fabrikam"))

    @pytest.mark.parametrize("password", ["contoso rocks 2030", "I love FABRIKAM!", "my-CONTOSO-pass"])
    def test_context_words_are_refused(self, password: str) -> None:
        with pytest.raises(WeakPassword, match="name of this service"):
            check_password_policy(self.policy, password)

    def test_the_email_local_part_is_refused(self) -> None:
        with pytest.raises(WeakPassword, match="email"):
            check_password_policy(self.policy, "hello margaret 77", email="margaret@example.com")

    def test_short_words_and_other_passwords_pass(self) -> None:
        check_password_policy(
            PasswordPolicy(context_words=("ab",)), "about a boat ride", email="jo@example.com"
        )
        check_password_policy(self.policy, "correct horse battery", email="margaret@example.com")
