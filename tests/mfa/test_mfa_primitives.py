"""The second factor's building blocks: sealed secrets, TOTP against pyotp, recovery codes. No storage."""

from __future__ import annotations

import base64
import math
import re
import secrets
import string
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

import hypothesis
import pyotp
import pytest
from hypothesis import strategies as st

from shared.mfa import recovery_codes, totp
from shared.mfa.encryption import (
    EncryptionKeys,
    SecretUnreadable,
    decrypt,
    encrypt,
    key_id,
    needs_reencryption,
)

#: RFC 6238 appendix B's SHA-1 seed, "12345678901234567890", in base32.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode("ascii")
#: RFC 6238 appendix B (SHA-1): time, step, and the last 6 of the 8 digits given there.
RFC_VECTORS = [
    (59, 0x1, "287082"),
    (1111111109, 0x23523EC, "081804"),
    (1111111111, 0x23523ED, "050471"),
    (1234567890, 0x273EF07, "005924"),
    (2000000000, 0x3F940AA, "279037"),
    (20000000000, 0x27BC86AA, "353130"),
]
AAD = b"totp-secret\x00user-1"
BASE64URL = string.ascii_letters + string.digits + "-_"

hypothesis_settings = hypothesis.settings(max_examples=50, deadline=None)
#: Instants from 1970 (plus two steps) to 2100.
instants = st.floats(min_value=60, max_value=4_102_444_800, allow_nan=False)
secrets_160 = st.binary(min_size=20, max_size=20).map(lambda raw: base64.b32encode(raw).decode("ascii"))


def new_keys(previous: int = 0) -> EncryptionKeys:
    return EncryptionKeys(secrets.token_bytes(32), tuple(secrets.token_bytes(32) for _ in range(previous)))


def unreadable(keys: EncryptionKeys, sealed: str, associated_data: bytes = AAD) -> str:
    """Decrypt a value that must not open and return the logged reason."""
    with pytest.raises(SecretUnreadable) as refused:
        decrypt(keys, sealed, associated_data=associated_data)
    assert str(refused.value) == "the secret could not be decrypted", "one message for every cause"
    return refused.value.reason


# Encryption at rest


@hypothesis_settings
@hypothesis.given(plaintext=st.binary(max_size=200), associated_data=st.binary(max_size=64))
def test_encrypt_decrypt_round_trip(plaintext: bytes, associated_data: bytes) -> None:
    """What is sealed opens to the same bytes with the same associated data."""
    keys = new_keys()
    sealed = encrypt(keys, plaintext, associated_data=associated_data)
    assert decrypt(keys, sealed, associated_data=associated_data) == plaintext


def test_sealed_format_names_the_key() -> None:
    """v1.<key id>.<nonce>.<ciphertext>: ASCII, unpadded URL-safe base64, a 96-bit nonce, a 16-byte tag."""
    keys = new_keys()
    sealed = encrypt(keys, b"x" * 20, associated_data=AAD)
    version, kid, nonce, ciphertext = sealed.split(".")
    assert (version, kid) == ("v1", key_id(keys.current))
    assert re.fullmatch(r"[A-Za-z0-9_-]+", nonce + ciphertext)
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 12
    assert len(base64.urlsafe_b64decode(ciphertext + "=" * (-len(ciphertext) % 4))) == 20 + 16


def test_every_seal_uses_a_fresh_nonce() -> None:
    """Sealing the same secret twice gives different nonces and ciphertexts."""
    keys = new_keys()
    sealed = {encrypt(keys, b"same secret", associated_data=AAD) for _ in range(50)}
    assert len(sealed) == 50
    assert len({value.split(".")[2] for value in sealed}) == 50


def test_key_id_is_short_stable_and_not_the_key() -> None:
    """The key id is 12 URL-safe characters, the same for the same key, and shows nothing of it."""
    key = secrets.token_bytes(32)
    assert key_id(key) == key_id(bytes(key))
    assert re.fullmatch(r"[A-Za-z0-9_-]{12}", key_id(key))
    assert key_id(key) != key_id(secrets.token_bytes(32))
    assert key.hex() not in key_id(key)
    assert base64.urlsafe_b64decode(key_id(key)) not in key


def test_ciphertext_does_not_contain_the_plaintext() -> None:
    """Neither the sealed string nor its decoded ciphertext contains the secret, in any spelling."""
    secret = totp.new_secret()
    sealed = encrypt(new_keys(), secret.encode("ascii"), associated_data=AAD)
    ciphertext = sealed.split(".")[3]
    raw = base64.urlsafe_b64decode(ciphertext + "=" * (-len(ciphertext) % 4))
    assert secret not in sealed
    assert secret.lower() not in sealed.lower()
    assert secret.encode("ascii") not in raw
    assert base64.b32decode(secret) not in raw


def test_other_associated_data_fails() -> None:
    """A secret sealed for one account does not open for another (or for nothing)."""
    keys = new_keys()
    sealed = encrypt(keys, b"secret", associated_data=b"totp-secret\x00user-1")
    for other in (b"totp-secret\x00user-2", b"totp-secret\x00user-1 ", b"", b"recovery\x00user-1"):
        assert unreadable(keys, sealed, other).startswith("authentication failed")


def test_tampering_with_any_character_fails() -> None:
    """Changing any one character of a sealed value, to anything else, makes it unreadable."""
    keys = new_keys()
    sealed = encrypt(keys, b"JBSWY3DPEHPK3PXP", associated_data=AAD)
    replacements = BASE64URL + ".=+/ \n\u00e9"
    for index, original in enumerate(sealed):
        for replacement in replacements:
            if replacement != original:
                tampered = sealed[:index] + replacement + sealed[index + 1 :]
                unreadable(keys, tampered)


@hypothesis_settings
@hypothesis.given(data=st.data())
def test_tampering_with_the_ciphertext_bytes_fails(data: st.DataObject) -> None:
    """Flipping any bit of the nonce or ciphertext bytes, truncating or extending them, fails."""
    keys = new_keys()
    sealed = encrypt(keys, data.draw(st.binary(max_size=64)), associated_data=AAD)
    header, nonce_text, ciphertext_text = sealed.rsplit(".", 2)
    raw = bytearray(base64.urlsafe_b64decode(nonce_text + "==")) + bytearray(
        base64.urlsafe_b64decode(ciphertext_text + "=" * (-len(ciphertext_text) % 4))
    )
    edit = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if edit == "flip":
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= 1 << data.draw(st.integers(0, 7))
    elif edit == "truncate":
        del raw[data.draw(st.integers(12, len(raw) - 1)) :]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=8))

    def encoded(part: bytes) -> str:
        return base64.urlsafe_b64encode(part).decode("ascii").rstrip("=")

    unreadable(keys, f"{header}.{encoded(bytes(raw[:12]))}.{encoded(bytes(raw[12:]))}")


@pytest.mark.parametrize(
    "sealed",
    [
        "",
        "v1",
        "v1...",
        "v1.a.b",
        "v1.a.b.c.d",
        "v2.{kid}.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.{kid}.AAAAAAAAAAAAAAAA.AAAA",
        "v1.{kid}.AAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.{kid}.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA==",
        "v1.{kid}.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAB",
        "v1.{kid}.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAA",
        "v1.{kid}.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAA+",
        "v1.{kid}.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA\n",
        "v1.{kid}.AAAAAAAAAAAAAAAA.\u00e9AAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_values_fail(sealed: str) -> None:
    """Anything not exactly what encrypt() makes is unreadable, never another exception."""
    keys = new_keys()
    unreadable(keys, sealed.format(kid=key_id(keys.current)))


def test_rotation_opens_values_of_previous_keys_and_flags_them() -> None:
    """After a rotation, old values still open and need re-encryption; re-sealed ones do not."""
    old = new_keys()
    sealed = encrypt(old, b"secret", associated_data=AAD)
    assert not needs_reencryption(old, sealed)
    rotated = EncryptionKeys(secrets.token_bytes(32), (secrets.token_bytes(32), old.current))
    assert decrypt(rotated, sealed, associated_data=AAD) == b"secret"
    assert needs_reencryption(rotated, sealed)
    resealed = encrypt(rotated, decrypt(rotated, sealed, associated_data=AAD), associated_data=AAD)
    assert resealed.split(".")[1] == key_id(rotated.current)
    assert not needs_reencryption(rotated, resealed)
    assert decrypt(rotated, resealed, associated_data=AAD) == b"secret"


def test_unknown_key_id_fails() -> None:
    """A value sealed under a key that is neither current nor previous does not open."""
    sealed = encrypt(new_keys(), b"secret", associated_data=AAD)
    assert unreadable(new_keys(previous=2), sealed) == "unknown key id"
    assert not needs_reencryption(new_keys(previous=2), sealed)


def test_needs_reencryption_is_false_for_malformed_values() -> None:
    """Only the header is read: garbage is for decrypt() to refuse."""
    keys = new_keys(previous=1)
    for value in ("", "garbage", f"v2.{key_id(keys.previous[0])}.a.b", f"v1.{key_id(keys.previous[0])}.a"):
        assert not needs_reencryption(keys, value)


def test_from_hex_builds_the_keys() -> None:
    """64 hex digits each, either case, whitespace around them ignored; the order is kept."""
    current, first, second = (secrets.token_bytes(32) for _ in range(3))
    keys = EncryptionKeys.from_hex(current.hex().upper(), [f" {first.hex()}\n", second.hex()])
    assert keys == EncryptionKeys(current, (first, second))
    assert EncryptionKeys.from_hex(current.hex()).previous == ()
    assert current.hex() not in repr(keys)


def near_keys() -> st.SearchStrategy[str]:
    """Strings that look like a key but are not 64 hex digits."""
    valid = st.binary(min_size=32, max_size=32).map(bytes.hex)
    return st.one_of(
        st.text(alphabet="0123456789abcdefABCDEF", min_size=12).filter(lambda text: len(text) != 64),
        st.tuples(valid, st.integers(0, 63), st.sampled_from("gxzG- \t\u0660\uff10")).map(
            lambda drawn: drawn[0][: drawn[1]] + drawn[2] + drawn[0][drawn[1] + 1 :]
        ),
        valid.map(lambda text: "0x" + text[2:]),
        valid.map(lambda text: text + "0"),
        valid.map(lambda text: " ".join(text[index : index + 2] for index in range(0, 64, 2))),
    )


@hypothesis_settings
@hypothesis.given(bad=near_keys(), position=st.integers(0, 2))
def test_from_hex_refuses_bad_values_without_showing_them(bad: str, position: int) -> None:
    """Anything but 64 hex digits is a ValueError naming which setting, never quoting the value."""
    good = [secrets.token_hex(32) for _ in range(3)]
    values = [*good[:position], bad, *good[position + 1 :]]
    with pytest.raises(ValueError, match="64 hex digits") as refused:
        EncryptionKeys.from_hex(values[0], values[1:])
    message = str(refused.value)
    assert bad.strip() not in message
    assert all(value not in message for value in good)
    expected = "AUTH_ENCRYPTION_KEY" if position == 0 else f"previous encryption key {position} "
    assert expected in message


def test_from_hex_refuses_empty_values_and_a_bare_string() -> None:
    """An empty setting is refused by name; a single string as the previous keys is a TypeError."""
    with pytest.raises(ValueError, match="AUTH_ENCRYPTION_KEY"):
        EncryptionKeys.from_hex("")
    with pytest.raises(ValueError, match="previous encryption key 1 "):
        EncryptionKeys.from_hex(secrets.token_hex(32), [""])
    with pytest.raises(TypeError):
        EncryptionKeys.from_hex(secrets.token_hex(32), secrets.token_hex(32))


def test_keys_must_be_32_bytes() -> None:
    """The dataclass refuses keys of any other length."""
    with pytest.raises(ValueError, match="32 bytes"):
        EncryptionKeys(secrets.token_bytes(16))
    with pytest.raises(ValueError, match="32 bytes"):
        EncryptionKeys(secrets.token_bytes(32), (secrets.token_bytes(31),))


# TOTP


def test_new_secret_is_160_bits_of_base32() -> None:
    """32 uppercase base32 characters without padding, decoding to 20 bytes; never the same twice."""
    made = {totp.new_secret() for _ in range(20)}
    assert len(made) == 20
    for secret in made:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) * 8 == 160


@pytest.mark.parametrize(("at", "step", "code"), RFC_VECTORS)
def test_rfc_6238_vectors(at: int, step: int, code: str) -> None:
    """The RFC's SHA-1 test vectors: the right step, and the code accepted for it."""
    assert totp.time_step(at) == step
    assert totp.time_step(datetime.fromtimestamp(at, UTC)) == step
    assert totp.accepted_step(RFC_SECRET, code, now=at, last_used_step=None) == step


def test_time_step_edges() -> None:
    """Steps change on multiples of 30 s; naive, pre-1970, infinite or NaN instants are refused."""
    assert [totp.time_step(t) for t in (0, 29.999, 30, 59, 60)] == [0, 0, 1, 1, 2]
    assert totp.time_step(datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)) == 1704067230 // 30
    two_hours_east = timezone(timedelta(hours=2))
    assert totp.time_step(datetime(2024, 1, 1, 2, 0, 30, tzinfo=two_hours_east)) == 1704067230 // 30
    for bad in (datetime(2024, 1, 1), -1, math.inf, math.nan, 253_402_300_800, 10**400):
        with pytest.raises(ValueError, match="instant"):
            totp.time_step(bad)


def distinct_codes(authenticator: pyotp.TOTP, at: float) -> dict[int, str]:
    """The codes of the steps two either side of ``at`` by offset, assuming (hypothesis) no two are equal."""
    codes = {offset: authenticator.at(at, counter_offset=offset) for offset in range(-2, 3)}
    hypothesis.assume(len(set(codes.values())) == len(codes))
    return codes


@hypothesis_settings
@hypothesis.given(secret=secrets_160, at=instants)
def test_current_code_is_accepted_once(secret: str, at: float) -> None:
    """The app's current code gives its step; the same code, or an earlier one, is refused after that."""
    authenticator = pyotp.TOTP(secret)
    codes = distinct_codes(authenticator, at)
    step = totp.time_step(at)
    assert totp.accepted_step(secret, codes[0], now=at, last_used_step=None) == step
    assert totp.accepted_step(secret, codes[0], now=at, last_used_step=step - 1) == step
    assert totp.accepted_step(secret, codes[0], now=at, last_used_step=step) is None
    assert totp.accepted_step(secret, codes[-1], now=at, last_used_step=step) is None
    assert totp.accepted_step(secret, codes[0], now=at + 30, last_used_step=step) is None
    aware = datetime.fromtimestamp(at, UTC)
    assert totp.accepted_step(secret, codes[0], now=aware, last_used_step=None) == step


@hypothesis_settings
@hypothesis.given(secret=secrets_160, at=instants)
def test_adjacent_steps_are_accepted_only_when_later_than_the_last_used(secret: str, at: float) -> None:
    """Codes one step early or late are accepted (±30 s drift), but only after the last used step."""
    codes = distinct_codes(pyotp.TOTP(secret), at)
    step = totp.time_step(at)
    assert totp.accepted_step(secret, codes[-1], now=at, last_used_step=None) == step - 1
    assert totp.accepted_step(secret, codes[-1], now=at, last_used_step=step - 2) == step - 1
    assert totp.accepted_step(secret, codes[-1], now=at, last_used_step=step - 1) is None
    assert totp.accepted_step(secret, codes[1], now=at, last_used_step=None) == step + 1
    assert totp.accepted_step(secret, codes[1], now=at, last_used_step=step) == step + 1
    assert totp.accepted_step(secret, codes[1], now=at, last_used_step=step + 1) is None
    assert totp.accepted_step(secret, codes[0], now=at, last_used_step=step + 1) is None


@hypothesis_settings
@hypothesis.given(secret=secrets_160, at=instants)
def test_steps_two_away_are_refused(secret: str, at: float) -> None:
    """Codes two steps early or late are refused, whatever was used before."""
    codes = distinct_codes(pyotp.TOTP(secret), at)
    for offset in (-2, 2):
        assert totp.accepted_step(secret, codes[offset], now=at, last_used_step=None) is None


@hypothesis_settings
@hypothesis.given(secret=secrets_160, at=instants)
def test_spaces_are_ignored(secret: str, at: float) -> None:
    """A code typed as the apps show it (``123 456``), or with stray spaces, is the same code."""
    code = pyotp.TOTP(secret).at(at)
    for typed in (f"{code[:3]} {code[3:]}", f" {code}\t", " ".join(code)):
        assert totp.accepted_step(secret, typed, now=at, last_used_step=None) == totp.time_step(at)


@pytest.mark.parametrize(
    "code",
    [
        "",
        "28708",
        "2870822",
        "287-082",
        "28708a",
        "+87082",
        "\uff12\uff18\uff17\uff10\uff18\uff12",
        "\u0662\u0668\u0667\u0660\u0668\u0662",
    ],
)
def test_malformed_codes_are_refused(code: str) -> None:
    """Wrong length, non-digits and non-ASCII digits are refused (the RFC vector's code is 287082)."""
    assert totp.accepted_step(RFC_SECRET, "287082", now=59, last_used_step=None) == 1
    assert totp.accepted_step(RFC_SECRET, code, now=59, last_used_step=None) is None


def test_wrong_code_is_refused() -> None:
    """A well-formed code that is not one of the three candidates is refused."""
    candidates = {pyotp.TOTP(RFC_SECRET).at(59, counter_offset=offset) for offset in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in candidates)
    assert totp.accepted_step(RFC_SECRET, wrong, now=59, last_used_step=None) is None


def test_provisioning_uri() -> None:
    """The Key URI Format: label issuer:account, every parameter, escaping that keeps parts apart."""
    secret = totp.new_secret()
    account, issuer = "ann+mfa@example.com", "Contoso Mobile / Dev & Test"
    uri = totp.provisioning_uri(secret, account=account, issuer=issuer)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path.count("/") == 1, "a / in the issuer is escaped"
    label_issuer, label_account = parts.path[1:].split(":")
    assert (unquote(label_issuer), unquote(label_account)) == (issuer, account)
    assert "@" in label_account
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {
        "secret": [secret],
        "issuer": [issuer],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }
    assert " " not in uri
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.name, parsed.issuer) == (secret, account, issuer)
    assert (parsed.digits, parsed.interval, parsed.digest().name) == (6, 30, "sha1")


@hypothesis_settings
@hypothesis.given(
    account=st.text(min_size=1, max_size=40).filter(lambda text: ":" not in text),
    issuer=st.text(min_size=1, max_size=40).filter(lambda text: ":" not in text),
)
def test_provisioning_uri_round_trips_any_names(account: str, issuer: str) -> None:
    """pyotp reads back any account and issuer without a colon, whatever characters they hold."""
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, account=account, issuer=issuer)
    assert uri.isascii()
    parsed = pyotp.parse_uri(uri)
    assert (parsed.secret, parsed.name, parsed.issuer) == (secret, account, issuer)


@pytest.mark.parametrize(
    ("account", "issuer"), [("", "Contoso"), ("ann", ""), ("a:b", "Contoso"), ("ann", "C:o")]
)
def test_provisioning_uri_refuses_empty_names_and_colons(account: str, issuer: str) -> None:
    """The format forbids a colon in either name; empty ones are refused too."""
    with pytest.raises(ValueError, match="colon"):
        totp.provisioning_uri(totp.new_secret(), account=account, issuer=issuer)


def test_qr_code_data_uri_is_an_svg() -> None:
    """A data: URI of an SVG image holding a QR code's dark modules."""
    uri = totp.provisioning_uri(totp.new_secret(), account="ann@example.com", issuer="Contoso")
    data_uri = totp.qr_code_data_uri(uri)
    assert data_uri.startswith("data:image/svg+xml")
    header, _, payload = data_uri.partition(",")
    assert ";base64" not in header
    document = unquote(payload)
    root = ElementTree.fromstring(document)  # noqa: S314 - our own output
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find(".//{http://www.w3.org/2000/svg}path") is not None
    assert int(root.attrib["width"]) > 100


# Recovery codes

CODE_SHAPE = re.compile(r"[0-9a-hjkmnp-tv-z]{4}(?:-[0-9a-hjkmnp-tv-z]{4}){5}")
raw_codes = st.text(alphabet=recovery_codes.ALPHABET, min_size=24, max_size=24)


def test_recovery_codes_are_distinct_and_shaped() -> None:
    """Ten distinct codes of six hyphenated groups of four symbols, each already normal once hyphens go."""
    codes = recovery_codes.new_recovery_codes()
    assert len(codes) == recovery_codes.RECOVERY_CODE_COUNT == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert CODE_SHAPE.fullmatch(code), code
        assert recovery_codes.normalize(code) == code.replace("-", "")
    assert len(recovery_codes.new_recovery_codes(3)) == 3
    with pytest.raises(ValueError, match="at least one"):
        recovery_codes.new_recovery_codes(0)


def test_recovery_code_entropy_is_at_least_112_bits() -> None:
    """32 distinct symbols without look-alikes, 24 of them: 120 bits, enough for a plain keyed hash."""
    alphabet = recovery_codes.ALPHABET
    assert len(set(alphabet)) == len(alphabet) == 32
    assert not set("ilou") & set(alphabet)
    bits = math.log2(len(alphabet) ** recovery_codes.CODE_LENGTH)
    assert bits == recovery_codes.ENTROPY_BITS == 120
    assert bits >= 112


def test_recovery_codes_use_every_symbol() -> None:
    """Over many codes every symbol appears and none outside the alphabet (a sanity check on the draw)."""
    seen = set("".join(recovery_codes.new_recovery_codes(100)).replace("-", ""))
    assert seen == set(recovery_codes.ALPHABET)


def sloppy(raw: str, data: st.DataObject) -> str:
    """``raw`` as someone might type it: any case, spaces and hyphens anywhere, look-alikes."""
    look_alikes = {"0": "0oO", "1": "1iIlL", "v": "vVuU"}
    typed = []
    for char in raw:
        typed.append(data.draw(st.sampled_from(look_alikes.get(char, char + char.upper()))))
        typed.append(data.draw(st.sampled_from(["", "", "-", " "])))
    return "".join(typed)


@hypothesis_settings
@hypothesis.given(raw=raw_codes, data=st.data())
def test_normalize_forgives_case_separators_and_look_alikes(raw: str, data: st.DataObject) -> None:
    """Upper case, spaces, hyphens, o/i/l/u for 0/1/1/v: all read as the code."""
    assert recovery_codes.normalize(sloppy(raw, data)) == raw


@pytest.mark.parametrize(
    "code",
    [
        "",
        "0" * 23,
        "0" * 25,
        "0000-0000-0000-0000-0000-000!",
        "0000-0000-0000-0000-0000-000_",
        "0000_0000_0000_0000_0000_0000",
        "0000-0000-0000-0000-0000-000\u212a",  # KELVIN SIGN, whose lower case is "k"
        "0000-0000-0000-0000-0000-000\u00e9",
        "-" * 1000 + "0" * 24,
    ],
)
def test_normalize_refuses_what_is_not_a_code(code: str) -> None:
    """Wrong length, other characters and non-ASCII are not codes."""
    assert recovery_codes.normalize(code) is None


def test_recovery_code_key_is_derived() -> None:
    """32 bytes, the same for the same key, different from it and from another key's."""
    key = secrets.token_bytes(32)
    derived = recovery_codes.recovery_code_key(key)
    assert len(derived) == 32
    assert derived == recovery_codes.recovery_code_key(key)
    assert derived != key
    assert derived != recovery_codes.recovery_code_key(secrets.token_bytes(32))


def test_find_returns_the_index_of_each_code() -> None:
    """Each code, as shown or as typed sloppily, finds its own digest; a wrong or malformed one, None."""
    key = recovery_codes.recovery_code_key(secrets.token_bytes(32))
    codes = recovery_codes.new_recovery_codes()
    stored = [recovery_codes.digest(key, "user-1", code) for code in codes]
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in stored)
    for index, code in enumerate(codes):
        assert recovery_codes.find(key, "user-1", code, stored) == index
        assert recovery_codes.find(key, "user-1", code.upper().replace("-", " "), stored) == index
    (other,) = recovery_codes.new_recovery_codes(1)
    assert recovery_codes.find(key, "user-1", other, stored) is None
    assert recovery_codes.find(key, "user-1", codes[0][:-1], stored) is None
    assert recovery_codes.find(key, "user-1", "not a code", stored) is None
    assert recovery_codes.find(key, "user-1", codes[0], []) is None


def test_a_used_code_no_longer_matches() -> None:
    """Once its digest is blanked (as the caller does on use), a code finds nothing; the others still work."""
    key = secrets.token_bytes(32)
    codes = recovery_codes.new_recovery_codes()
    stored = [recovery_codes.digest(key, "user-1", code) for code in codes]
    stored[3] = ""
    assert recovery_codes.find(key, "user-1", codes[3], stored) is None
    assert recovery_codes.find(key, "user-1", codes[4], stored) == 4


def test_digests_are_bound_to_the_user_and_the_key() -> None:
    """The same code digests differently per user id and per key; another user's digests never match."""
    key = secrets.token_bytes(32)
    (code,) = recovery_codes.new_recovery_codes(1)
    digest = recovery_codes.digest(key, "user-1", code)
    assert digest != recovery_codes.digest(key, "user-2", code)
    assert digest != recovery_codes.digest(key, "user-1\x00", code)
    assert digest != recovery_codes.digest(secrets.token_bytes(32), "user-1", code)
    assert recovery_codes.find(key, "user-2", code, [digest]) is None
    assert recovery_codes.find(secrets.token_bytes(32), "user-1", code, [digest]) is None
    assert code.replace("-", "") not in digest


def test_digest_refuses_malformed_codes() -> None:
    """digest() is only for codes; a malformed one is a ValueError."""
    with pytest.raises(ValueError, match="not a recovery code"):
        recovery_codes.digest(secrets.token_bytes(32), "user-1", "1234")
