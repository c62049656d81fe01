"""Figures 6 and 6b: the gate's token check (HS256, then ES256 and RS256), against PyJWT's own decode."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

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


def signed_token_verification(samples: int, report: Report) -> None:
    """Figure 6b: the gate's check of ES256 and RS256 tokens, against PyJWT's own decode and against HS256."""
    import jwt  # noqa: PLC0415 - the bench measures it; the functions import it on first use

    from shared.settings.signing import (  # noqa: PLC0415
        SigningAlgorithm,
        SigningKeys,
        generate_private_key,
        parse_private_key,
    )

    def per_call(action: Callable[[], object]) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(samples):
                action()
            runs.append((time.perf_counter() - started) / samples)
        return statistics.median(runs)

    hmac_key = secrets.token_bytes(32)
    base = TokenSettings(TokenFormat.APPSERVICE, (hmac_key,), ZUMO_ISSUER, ZUMO_ISSUER, timedelta(hours=1))
    user = "custom:00benchmarkbenchmark0000"

    def signed(settings: TokenSettings) -> str:
        return issue_token(settings, user, session_version=0, amr=("pwd",), session_id="a" * 24).token

    hs256_token = signed(base)
    verify_token(base, hs256_token)
    hs256 = per_call(lambda: verify_token(base, hs256_token))
    report.table(
        "6b. Token verification, ES256 and RS256",
        "The gate's check (`verify_token`: the header's `kid` picks the published key, PyJWT verifies with "
        "the one algorithm of that key, then the claim checks) of a token signed with a P-256 key (ES256) "
        "and an RSA-3072 key (RS256), against PyJWT's own `jwt.decode` of the same token with the same key "
        "and checks, and against the gate's HS256 check. Per call, after the first. HS256 tokens keep the "
        "path of figure 6 (no header read first) while no public key is configured.",
    )
    report.row("verify_token, HS256 (as figure 6)", f"{hs256 * 1e6:.1f} µs")
    for algorithm in (SigningAlgorithm.ES256, SigningAlgorithm.RS256):
        private = parse_private_key(generate_private_key(algorithm), algorithm, setting="bench")
        settings = dataclasses.replace(base, signing_keys=SigningKeys(algorithm=algorithm, current=private))
        token = signed(settings)
        public: Any = private.public.key
        verify_token(settings, token)

        def pyjwt_decode(token: str = token, public: Any = public, name: str = str(algorithm)) -> object:
            return jwt.decode(
                token,
                public,
                algorithms=[name],
                audience=ZUMO_ISSUER,
                issuer=ZUMO_ISSUER,
                leeway=60,
                options={"require": ["exp", "iss", "aud", "sub", "iat"]},
            )

        def gate(settings: TokenSettings = settings, token: str = token) -> object:
            return verify_token(settings, token)

        ours = per_call(gate)
        floor = per_call(pyjwt_decode)
        report.row(f"**verify_token, {algorithm}** ({len(token)} characters)", f"{ours * 1e6:.1f} µs")
        report.row(f"PyJWT `jwt.decode`, same {algorithm} token, key and checks", f"{floor * 1e6:.1f} µs")
        report.row(f"verify_token / PyJWT decode, {algorithm}", f"{ours / floor:.2f}")
        report.row(f"verify_token {algorithm} / verify_token HS256", f"{ours / hs256:.1f}")
