"""The public key set (RFC 7517) and the discovery document (OpenID Connect Discovery 1.0).

Both are built from :class:`~shared.settings.signing.SigningKeys` alone, so
they can never hold more than the public keys: each entry is the JWK that
:mod:`shared.settings.signing` built from a public key object (``kty``, the
key's public members, ``kid``, ``alg``, ``use``), and the HMAC key is never in
a ``SigningKeys`` at all. :func:`key_set` checks that once more before answering.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.settings.signing import PRIVATE_MEMBERS, SigningKeys

__all__ = ["CLAIMS", "DISCOVERY_PATH", "JWKS_PATH", "discovery_document", "jwks_uri", "key_set"]

JWKS_PATH = ".well-known/jwks.json"
DISCOVERY_PATH = ".well-known/openid-configuration"
#: The claims an access token may carry (see shared.tokens.access_tokens).
CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "ver", "sid", "amr", "sv", "sat", "uid")


def key_set(keys: SigningKeys) -> dict[str, list[dict[str, str]]]:
    """Every public key that may verify a live token: current, next, previous (JWK Set).

    Under HS256 the current key is the HMAC key, which is never published: the
    set holds only the configured next and previous public keys (empty otherwise).
    """
    entries = [dict(key.jwk) for key in keys.published]
    for entry in entries:
        if PRIVATE_MEMBERS & entry.keys() or entry.get("kty") not in ("EC", "RSA"):
            raise AssertionError("a key set entry is not a public key")  # unreachable: see the docstring
    return {"keys": entries}


def jwks_uri(issuer: str, request_url: str) -> str:
    """``{issuer}.well-known/jwks.json`` (RFC 8414 style, for an issuer that is an http(s) URL).

    An issuer that is not a URL (the Mobile Services ``urn:`` default, with no
    ``WEBSITE_HOSTNAME``) names no host: then the key set of the host that
    answered the request (its scheme and authority).
    """
    parsed = urlsplit(issuer)
    if parsed.scheme in ("https", "http") and parsed.netloc:
        return issuer.rstrip("/") + "/" + JWKS_PATH
    answered = urlsplit(request_url)
    return f"{answered.scheme}://{answered.netloc}/{JWKS_PATH}"


def discovery_document(issuer: str, keys: SigningKeys, request_url: str) -> dict[str, Any]:
    """What verifiers read to find the keys: only fields that are true of this service.

    There is no authorization, token (OAuth form-encoded) or userinfo endpoint,
    so none is named; the algorithms are those of the keys a token may verify
    with, the signing one first.
    """
    algorithms: list[str] = []
    signing = [str(keys.algorithm)] if keys.algorithm.asymmetric else []
    for algorithm in [*signing, *(str(key.algorithm) for key in keys.published)]:
        if algorithm not in algorithms:
            algorithms.append(algorithm)
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri(issuer, request_url),
        "id_token_signing_alg_values_supported": algorithms,
        "subject_types_supported": ["public"],
        "claims_supported": list(CLAIMS),
    }
