"""Figure 6: the gate's token check, against PyJWT's own decode and a bare HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import timedelta

from shared.tokens.access_tokens import ZUMO_ISSUER, TokenFormat, TokenSettings, issue_token, verify_token
from tools.bench.report import Report


def token_verification(samples: int, report: Report) -> None:
    """Figure 6: µs per verify, against PyJWT's own decode of the same token and a bare HMAC-SHA256."""
    import jwt  # noqa: PLC0415 - the bench measures it; the functions import it on first use
    from jwt.algorithms import HMACAlgorithm  # noqa: PLC0415

    from shared.tokens import access_tokens as tokens  # noqa: PLC0415 - for its claim checks alone

    key = secrets.token_bytes(32)
    settings = TokenSettings(TokenFormat.APPSERVICE, (key,), ZUMO_ISSUER, ZUMO_ISSUER, timedelta(hours=1))
    token = issue_token(
        settings, "custom:00benchmarkbenchmark0000", session_version=0, amr=("pwd",), session_id="a" * 22
    ).token
    signing_input = token.rsplit(".", 1)[0].encode()
    claims = jwt.decode(token, key, algorithms=["HS256"], audience=ZUMO_ISSUER, issuer=ZUMO_ISSUER)
    hmac_algorithm = HMACAlgorithm(HMACAlgorithm.SHA256)

    def per_call(action: Callable[[], object]) -> float:
        runs = []
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(samples):
                action()
            runs.append((time.perf_counter() - started) / samples)
        return statistics.median(runs)

    def pyjwt_decode() -> object:
        return jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=ZUMO_ISSUER,
            issuer=ZUMO_ISSUER,
            leeway=60,
            options={"require": ["exp", "iss", "aud", "sub", "iat"]},
        )

    verify_token(settings, token)  # the first call builds the verifier: not what the gate pays per request
    ours = per_call(lambda: verify_token(settings, token))
    floor = per_call(pyjwt_decode)
    parse = per_call(lambda: jwt.get_unverified_header(token))
    key_check = per_call(lambda: hmac_algorithm.prepare_key(key))
    claim_checks = per_call(lambda: tokens._verified(TokenFormat.APPSERVICE, claims))
    bare = per_call(lambda: hmac.new(key, signing_input, hashlib.sha256).digest())
    report.table(
        "6. Token verification",
        f"The gate's token check of a {len(token)}-character token (with `sid`, `amr` and `sv`), against "
        "PyJWT's own `jwt.decode` of the same token with the same checks, and the physical floor, one "
        "HMAC-SHA256. Per call, after the first (which builds the verifier: PyJWT decoder, options and key "
        "ids, once per settings). The rows below PyJWT's decode are parts of it, measured alone.",
    )
    report.row(
        "**verify_token** (PyJWT, then type and range of every claim read)",
        f"{ours * 1e6:.1f} µs",
        "≤ 60 µs",
        ours <= 60e-6,
    )
    report.row("PyJWT `jwt.decode`, same token and checks", f"{floor * 1e6:.1f} µs")
    report.row("verify_token / PyJWT decode", f"{ours / floor:.2f}")
    report.row(
        "of PyJWT's decode: parsing the three segments (`get_unverified_header` does the same parse)",
        f"{parse * 1e6:.1f} µs",
    )
    report.row(
        "of PyJWT's decode: its per-call check that the HMAC key is no PEM/SSH/DER key",
        f"{key_check * 1e6:.1f} µs",
    )
    report.row(
        "ours beyond PyJWT: the type and range checks of the claims read", f"{claim_checks * 1e6:.1f} µs"
    )
    report.row("bare HMAC-SHA256 of the same token", f"{bare * 1e6:.2f} µs")
