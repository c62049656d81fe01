"""Correctly signed tokens whose claims have a wrong type or range: always InvalidToken, never a 500."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis
import jwt
import pytest
from hypothesis import strategies as st

import me
import refresh
import register
from shared.accounts.mobile_services import LEGACY_AUDIENCE, LegacyTokenSettings, verify_legacy_token
from shared.errors import InvalidToken
from shared.tokens.access_tokens import (
    MAX_NUMERIC_DATE,
    MAX_SESSION_VERSION,
    MAX_TOKEN_LENGTH,
    ZUMO_ISSUER,
    TokenFormat,
    TokenSettings,
    issue_token,
    key_id,
    verify_token,
)
from tests.conftest import AppEnvironment, http_request, problem
from tests.tokens.test_tokens import appservice_settings, segment, zumo_settings

PASSWORD = "correct horse battery"
LEGACY_MASTER_KEY = "legacy master key of enough length"
APPSERVICE = appservice_settings()
ZUMO = zumo_settings()
LEGACY = LegacyTokenSettings.from_master_key(LEGACY_MASTER_KEY, timedelta(days=30))

# --- wrong values, by the kind of claim they are wrong for -------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
containers = st.lists(json_values, max_size=3) | st.dictionaries(st.text(max_size=8), json_values, max_size=3)
numeric_strings = st.one_of(
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["99999999999", "1700000000", " 1 ", "1_000", "0", "-1", "1e3", "Infinity", "NaN"]),
)
huge_numbers = st.sampled_from([2**63, 2**64, 10**20, 10**400, -(10**400), 1e308, -1e308])
#: JSON values that are not numbers: true and false neither, though a Python bool is an int.
not_numbers = st.one_of(st.none(), st.booleans(), st.text(max_size=20), numeric_strings, containers)
#: Not a NumericDate from 0 to MAX_NUMERIC_DATE: exp, nbf, iat.
bad_times = st.one_of(
    not_numbers,
    huge_numbers,
    st.integers(max_value=-1),
    st.integers(min_value=MAX_NUMERIC_DATE + 1),
    st.floats(max_value=-math.ulp(0.0)),
    st.floats(min_value=MAX_NUMERIC_DATE, exclude_min=True),
    st.just(math.nan),
)
#: sat is whole seconds: any float is wrong too.
bad_whole_seconds = bad_times | st.floats()
bad_session_versions = st.one_of(
    not_numbers,
    huge_numbers,
    st.floats(),
    st.integers(max_value=-1),
    st.integers(min_value=MAX_SESSION_VERSION + 1),
)
bad_user_ids = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), huge_numbers, containers, st.just("")
)


def not_the_string(expected: str) -> st.SearchStrategy[Any]:
    """Any JSON value but ``expected`` or a list holding it (a list is a valid ``aud``)."""
    return st.one_of(
        json_values, st.just([expected]), st.just([[expected]]), st.just({expected: expected})
    ).filter(lambda value: value != expected and not (isinstance(value, list) and expected in value))


# --- tokens ------------------------------------------------------------------------------------------


def sign(claims: dict[str, Any], key: bytes, kid: str) -> str:
    """Sign ``claims`` with PyJWT exactly as given.

    PyJWS signs the JSON bytes that ``jwt.encode`` would; ``jwt.encode`` itself
    refuses a non-string ``iss`` before signing, and such tokens are tested too.
    """
    token: str = jwt.PyJWS().encode(json.dumps(claims).encode(), key, algorithm="HS256", headers={"kid": kid})
    return token


def current_claims(settings: TokenSettings) -> dict[str, Any]:
    """The claims of a fresh token with every claim the service reads, sv and sat included."""
    issued = issue_token(settings, "custom:a", session_version=2, session_started=datetime.now(UTC))
    return segment(issued.token, 1)


def signed(settings: TokenSettings, claims: dict[str, Any]) -> str:
    kid = key_id(settings.keys[0]) if settings.format is TokenFormat.APPSERVICE else "0"
    return sign(claims, settings.keys[0], kid)


def legacy_claims() -> dict[str, Any]:
    """A valid Mobile Services v2 claim set, a day from expiry."""
    expires = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
    return {"exp": expires, "iss": ZUMO_ISSUER, "ver": 2, "aud": LEGACY_AUDIENCE, "uid": "Custom:1"}


def assert_invalid_token(verify: Callable[[str], object], token: str) -> None:
    """``verify`` raises InvalidToken, and nothing else, for the claim rather than the signature."""
    with pytest.raises(InvalidToken) as refused:
        verify(token)
    reason = refused.value.reason
    assert len(token) <= MAX_TOKEN_LENGTH, "the token must be refused for its claim, not its length"
    assert "InvalidSignature" not in reason, reason
    assert "key id" not in reason, reason


# --- properties --------------------------------------------------------------------------------------

TIME_AND_SESSION_CASES = [
    ("exp", bad_times),
    ("nbf", bad_times),
    ("iat", bad_times),
    ("sv", bad_session_versions),
    ("sat", bad_whole_seconds),
]
TOKEN_CASES = [
    *[(APPSERVICE, claim, values) for claim, values in TIME_AND_SESSION_CASES],
    (APPSERVICE, "sub", bad_user_ids),
    (APPSERVICE, "iss", not_the_string(APPSERVICE.issuer)),
    (APPSERVICE, "aud", not_the_string(APPSERVICE.audience)),
    *[(ZUMO, claim, values) for claim, values in TIME_AND_SESSION_CASES],
    (ZUMO, "uid", bad_user_ids),
    (ZUMO, "iss", not_the_string(ZUMO.issuer)),
    (ZUMO, "aud", not_the_string(ZUMO.audience)),
]
#: Legacy exp is seconds, or milliseconds above 10**11; either way from 1 to year 9999.
bad_legacy_exps = st.one_of(
    not_numbers,
    huge_numbers,
    st.integers(max_value=0),
    st.integers(min_value=MAX_NUMERIC_DATE * 1000 + 1),
    st.floats(max_value=0),
    st.floats(min_value=MAX_NUMERIC_DATE * 1000, exclude_min=True),
    st.just(math.nan),
)
LEGACY_CASES = [
    ("exp", bad_legacy_exps),
    ("uid", bad_user_ids),
    ("iss", not_the_string(ZUMO_ISSUER)),
    ("aud", not_the_string(LEGACY_AUDIENCE)),
]
PROPERTY_SETTINGS = hypothesis.settings(max_examples=60, deadline=None)


@pytest.mark.parametrize(
    ("settings", "claim", "values"),
    TOKEN_CASES,
    ids=[f"{settings.format}-{claim}" for settings, claim, _ in TOKEN_CASES],
)
@PROPERTY_SETTINGS
@hypothesis.given(data=st.data())
def test_wrong_claim_is_invalid_token(
    settings: TokenSettings, claim: str, values: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    """A signed token with one claim of a wrong type or range raises InvalidToken and nothing else."""
    value = data.draw(values, label=claim)
    token = signed(settings, current_claims(settings) | {claim: value})
    assert_invalid_token(lambda token: verify_token(settings, token), token)


@pytest.mark.parametrize(("claim", "values"), LEGACY_CASES, ids=[claim for claim, _ in LEGACY_CASES])
@PROPERTY_SETTINGS
@hypothesis.given(data=st.data())
def test_wrong_legacy_claim_is_invalid_token(
    claim: str, values: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    """The same for Mobile Services tokens (AUTH_LEGACY_MASTER_KEY)."""
    value = data.draw(values, label=claim)
    token = sign(legacy_claims() | {claim: value}, LEGACY.key, "0")
    assert_invalid_token(lambda token: verify_legacy_token(LEGACY, token), token)


# --- examples ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [APPSERVICE, ZUMO], ids=["appservice", "zumo"])
def test_the_unchanged_claims_verify(settings: TokenSettings) -> None:
    """The claim sets the properties start from are valid, so each refusal is the changed claim's."""
    verified = verify_token(settings, signed(settings, current_claims(settings)))
    assert (verified.user_id, verified.session_version) == ("custom:a", 2)
    assert verify_legacy_token(LEGACY, sign(legacy_claims(), LEGACY.key, "0")).user_id == "Custom:1"


PYJWT_LETS_THROUGH = [
    (APPSERVICE, "exp", "99999999999"),  # was a TypeError: 500
    (ZUMO, "exp", "99999999999"),
    (APPSERVICE, "iat", "100"),  # was silently ignored
    (APPSERVICE, "iat", True),  # was read as 1970-01-01T00:00:01
    (APPSERVICE, "iat", -5),
    (APPSERVICE, "nbf", "0"),
    (APPSERVICE, "sat", None),  # was taken for no sat
    (APPSERVICE, "sat", -1),
    (APPSERVICE, "sv", 10**40),
    (APPSERVICE, "exp", 10**30),
]


@pytest.mark.parametrize(
    ("settings", "claim", "value"),
    PYJWT_LETS_THROUGH,
    ids=[f"{settings.format}-{claim}={value!r}" for settings, claim, value in PYJWT_LETS_THROUGH],
)
def test_claims_pyjwt_lets_through_are_refused(settings: TokenSettings, claim: str, value: Any) -> None:
    """Values PyJWT accepts after int() (or does not check) are refused with a reason naming the claim."""
    token = signed(settings, current_claims(settings) | {claim: value})
    with pytest.raises(InvalidToken) as refused:
        verify_token(settings, token)
    assert refused.value.reason.startswith(
        {"sat": "session start", "sv": "session version"}.get(claim, claim)
    ), refused.value.reason


@pytest.mark.parametrize("leaked", [TypeError, OverflowError])
def test_what_older_pyjwt_leaks_from_decode_is_invalid_token(
    monkeypatch: pytest.MonkeyPatch, leaked: type[Exception]
) -> None:
    """PyJWT before jpadilla/pyjwt#1186 let int()'s TypeError or OverflowError out of decode(); still 401."""

    def validate_exp(*_: object) -> None:
        raise leaked("as int([1]) or int(float('inf')) did")

    monkeypatch.setattr(jwt.PyJWT, "_validate_exp", validate_exp)
    token = signed(APPSERVICE, current_claims(APPSERVICE) | {"exp": [1]})
    with pytest.raises(InvalidToken) as refused:
        verify_token(APPSERVICE, token)
    assert refused.value.reason == "rejected: a time claim PyJWT could not read"


def test_legacy_exp_too_large_for_a_float_is_refused() -> None:
    """A Mobile Services exp of 10**400 was an OverflowError (500) in the division into seconds."""
    token = sign(legacy_claims() | {"exp": 10**400}, LEGACY.key, "0")
    with pytest.raises(InvalidToken, match=r"^The authentication token"):
        verify_legacy_token(LEGACY, token)


def test_a_fractional_exp_still_verifies() -> None:
    """A NumericDate may have a fraction (RFC 7519), so a float exp in range is valid."""
    claims = current_claims(APPSERVICE)
    token = signed(APPSERVICE, claims | {"exp": claims["exp"] + 0.5})
    assert verify_token(APPSERVICE, token).expires_at.microsecond == 500_000


@pytest.mark.parametrize("audience", [[APPSERVICE.audience], [APPSERVICE.audience, "https://other.example/"]])
def test_an_aud_list_holding_our_audience_still_verifies(audience: list[str]) -> None:
    """aud may be a list of strings (RFC 7519); PyJWT accepts one that holds ours, and so do we."""
    token = signed(APPSERVICE, current_claims(APPSERVICE) | {"aud": audience})
    assert verify_token(APPSERVICE, token).user_id == "custom:a"


# --- over HTTP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("function", "method"), [(me, "GET"), (refresh, "POST")], ids=["me", "refresh"])
def test_signed_token_with_a_string_exp_is_401_not_500(
    app_env: AppEnvironment, function: Any, method: str
) -> None:
    """A correctly signed token whose exp is the string "99999999999" gets a 401 invalid_token problem."""
    response = register.main(
        http_request("POST", "register", {"email": "exp@example.com", "password": PASSWORD})
    )
    assert response.status_code == 201, response.get_body()
    token = json.loads(response.get_body())["token"]
    assert function.main(http_request(method, function.__name__, token=token)).status_code == 200
    claims = segment(token, 1) | {"exp": "99999999999"}
    forged = sign(claims, app_env.signing_key, key_id(app_env.signing_key))
    refused = function.main(http_request(method, function.__name__, token=forged))
    assert refused.status_code == 401, refused.get_body()
    assert problem(refused)["code"] == "invalid_token"
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
