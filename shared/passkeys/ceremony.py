"""What the two ceremonies share: reading a credential's JSON, its challenge, and why it failed.

A verify request sends ``{"credential": ...}`` as ``PublicKeyCredential.toJSON()``
gives it (base64url strings); the challenge it answers is read from its
``clientDataJSON``, which is how the server finds the stored challenge without
a cookie or a ceremony id. py_webauthn parses and verifies; nothing here
decodes CBOR, COSE or attestation.
"""

from __future__ import annotations

from typing import Any

from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import AuthenticationCredential, RegistrationCredential

from shared.errors import InvalidRequest

__all__ = ["MALFORMED", "assertion", "attestation", "refusal_reason", "require_credential"]

#: What parsing or verifying a client's answer may raise (the library's own, and its decoders').
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError, OverflowError)

#: Reasons logged for a refused answer, by what py_webauthn's message names (logs only).
_REASONS = (
    ("origin", "wrong_origin"),
    ("rp id", "wrong_rp_id"),
    ("user verification", "user_not_verified"),
    ("user was not present", "user_not_present"),
    ("user presence", "user_not_present"),
    ("signature", "bad_signature"),
    ("challenge", "wrong_challenge"),
    ("client data type", "wrong_type"),
    ("alg", "unsupported_algorithm"),
)


def require_credential(credential: Any) -> dict[str, Any]:
    """The request's ``credential``, which must be an object.

    :raises InvalidRequest: it is missing or not an object.
    """
    if not isinstance(credential, dict):
        raise InvalidRequest("The field 'credential' must be an object (PublicKeyCredential.toJSON()).")
    return credential


def attestation(credential: Any) -> tuple[RegistrationCredential, bytes]:
    """Parse a registration credential and the challenge it answers.

    :raises ValueError: (or another of :data:`MALFORMED`) the JSON is not such a credential.
    """
    if not isinstance(credential, dict):
        raise TypeError("the credential is not a JSON object")
    parsed = parse_registration_credential_json(credential)
    return parsed, parse_client_data_json(parsed.response.client_data_json).challenge


def assertion(credential: Any) -> tuple[AuthenticationCredential, bytes]:
    """Parse an authentication credential and the challenge it answers.

    :raises ValueError: (or another of :data:`MALFORMED`) the JSON is not such a credential.
    """
    if not isinstance(credential, dict):
        raise TypeError("the credential is not a JSON object")
    parsed = parse_authentication_credential_json(credential)
    return parsed, parse_client_data_json(parsed.response.client_data_json).challenge


def refusal_reason(error: Exception) -> str:
    """A short, fixed reason for a failed verification; the library's message (which quotes
    client data, such as the origin) is never logged."""
    message = str(error).lower()
    return next((reason for words, reason in _REASONS if words in message), "invalid_response")
