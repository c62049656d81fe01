"""``python -m tools.admin keys new`` and ``keys status``: the signing keys (docs/tokens.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from shared.settings import get_settings
from shared.settings.signing import (
    SigningAlgorithm,
    generate_private_key,
    parse_private_key,
    public_key_pem,
)
from shared.tokens.key_history import key_records
from tools.admin.output import print_fields, print_json, print_table, yes_no

__all__ = ["KEY_COMMANDS"]


def keys_new(args: argparse.Namespace) -> int:
    """Print a new key pair: the private key for Key Vault, the public half to publish first."""
    algorithm = SigningAlgorithm(args.algorithm)
    private = generate_private_key(algorithm)
    key = parse_private_key(private, algorithm, setting="new key")
    public = public_key_pem(key.public.key)
    if args.json:
        print_json({"kid": key.kid, "algorithm": str(algorithm), "privateKey": private, "publicKey": public})
        return 0
    print(f"# kid {key.kid} ({algorithm})")
    print("# 1. AUTH_NEXT_SIGNING_PUBLIC_KEY (publish now; it signs nothing yet):")
    print(public.strip())
    print("# on one line:", _one_line(public))
    print("# 2. AUTH_SIGNING_PRIVATE_KEY (Key Vault; set it when promoting the key, not before):")
    print(private.strip())
    print("# on one line:", _one_line(private))
    return 0


def keys_status(args: argparse.Namespace) -> int:
    """What signs, what the key set publishes, and since when (as the app's instances recorded it)."""
    settings = get_settings()
    keys = settings.signing.keys
    history = key_records(settings.storage)
    signing = keys.current if keys.algorithm.asymmetric else None
    roles = [("current", keys.current.public if keys.current else None), ("next", keys.next)]
    roles += [("previous", key) for key in keys.previous]
    published: list[dict[str, str]] = []
    for role, key in roles:
        if key is None or any(entry["kid"] == key.kid for entry in published):
            continue
        record = history.get(key.kid)
        published.append(
            {
                "role": role if role != "current" or signing is not None else "configured (not signing)",
                "kid": key.kid,
                "algorithm": str(key.algorithm),
                "publishedSince": _since(record.published_since if record else None),
                "signingSince": _since(record.signing_since if record else None),
            }
        )
    status: dict[str, Any] = {
        "algorithm": str(keys.algorithm),
        "signs": signing.kid if signing else "AUTH_SIGNING_KEY (HMAC, never published)",
        "acceptsHs256": keys.accept_hs256,
        "problem": str(keys.problem) if keys.problem else None,
        "jwksMaxAgeSeconds": settings.signing.jwks_max_age,
        "published": published,
        "currentPublicKey": public_key_pem(signing.public.key) if signing else None,
    }
    if args.json:
        print_json(status)
        return 0
    print_fields(
        [
            ("algorithm", str(keys.algorithm)),
            ("signs with", str(status["signs"])),
            ("HS256 accepted", yes_no(keys.accept_hs256)),
            ("key set max-age", f"{settings.signing.jwks_max_age} s"),
            ("problem", str(keys.problem) if keys.problem else "-"),
        ]
    )
    if published:
        print()
        rows = [
            [e["role"], e["kid"], e["algorithm"], e["publishedSince"], e["signingSince"]] for e in published
        ]
        print_table(["role", "kid", "alg", "published since", "signing since"], rows)
    if signing is not None:
        print("\n# the current public key (for AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS after promoting the next):")
        print(_one_line(str(status["currentPublicKey"])))
    return 0


def _since(instant: Any) -> str:
    return instant.isoformat().replace("+00:00", "Z") if instant is not None else "-"


def _one_line(pem: str) -> str:
    return pem.strip().replace("\n", "\\n")


KEY_COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "new": (keys_new, "print a new private key for Key Vault and its public half to publish first"),
    "status": (keys_status, "what signs, what is published, since when"),
}
