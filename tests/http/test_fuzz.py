"""Property-based: whatever a client sends, never a 5xx and never a partial account."""

from __future__ import annotations

import json
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

import login
import logout
import me
import password
import refresh
import register
from tests.conftest import AppEnvironment, http_request

PASSWORD = "correct horse battery"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
tricky_emails = st.one_of(
    st.text(max_size=80),
    st.builds(
        "{}{}@{}.example".format,
        st.sampled_from(
            [
                "a/b",
                "a\\b",
                "a#b",
                "a?b",
                "a%2Fb",
                "a\u0000b",
                "a\nb",
                "\u00dcn\u00ef",
                "U\u0308ni\u0308",
                "x" * 70,
            ]
        ),
        st.text(alphabet="abc./#?", max_size=5),
        st.sampled_from(["mail", "MAIL", "xn--bcher-kva", "bücher"]),
    ),
)
tricky_passwords = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["x" * (1 << 20), "\ud800" * 9, "pass\u0000word!!", "ﬁﬁﬁﬁﬁﬁﬁﬁ", "password1"]),
)
credential_bodies = st.fixed_dictionaries(
    {},
    optional={
        "email": tricky_emails | json_values,
        "emailOrUsername": tricky_emails,
        "password": tricky_passwords | json_values,
        "currentPassword": tricky_passwords,
        "newPassword": tricky_passwords,
    },
)


def encode(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    credential_bodies.map(encode),
    json_values.map(encode),
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth + b"]" * depth),
)


def assert_no_partial_account(app_env: AppEnvironment) -> None:
    """Every account is both of its rows; a login row without an account is only a failure record."""
    rows = app_env.entities()
    users = {row["RowKey"].removeprefix("user:") for row in rows if row["RowKey"].startswith("user:")}
    logins = {row["UserId"] for row in rows if row["RowKey"].startswith("email:") and "UserId" in row}
    assert users == logins
    for row in rows:
        if row["RowKey"].startswith("email:") and "UserId" not in row:
            assert "PasswordHash" not in row


FUNCTIONS = [
    (register, "POST"),
    (login, "POST"),
    (password, "POST"),
    (me, "DELETE"),
    (me, "GET"),
    (refresh, "POST"),
    (logout, "POST"),
]


@pytest.mark.parametrize(("function", "method"), FUNCTIONS, ids=[f"{m} {f.__name__}" for f, m in FUNCTIONS])
@hypothesis.settings(
    max_examples=40, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(body=bodies, with_token=st.booleans())
def test_any_body(app_env: AppEnvironment, function: Any, method: str, body: bytes, with_token: bool) -> None:
    token = None
    if with_token:
        email = "fuzz@example.com"
        response = login.main(http_request("POST", "login", {"email": email, "password": PASSWORD}))
        if response.status_code != 200:
            response = register.main(http_request("POST", "register", {"email": email, "password": PASSWORD}))
        token = json.loads(response.get_body()).get("token")
    response = function.main(http_request(method, function.__name__, body, token=token))
    assert response.status_code < 500, response.get_body()
    if response.status_code >= 400:
        assert json.loads(response.get_body())["code"]
    assert_no_partial_account(app_env)
