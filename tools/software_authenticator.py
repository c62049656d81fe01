"""A software authenticator: real WebAuthn answers from real keys, for the tests and the bench.

It does what a platform authenticator does for ``navigator.credentials.create()``
and ``.get()`` and returns what ``PublicKeyCredential.toJSON()`` gives: a P-256
key pair per credential (``cryptography``), a COSE public key and a
``"none"`` attestation object encoded with ``cbor2``, authenticator data with
the flags it is told to set, and an ECDSA signature over the authenticator
data and the hash of ``clientDataJSON``. Nothing here is verified by the
server's code path in the tests but by py_webauthn.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
ICLOUD_KEYCHAIN = bytes.fromhex("fbfc3007154e4ecc8c0b6e020557d7bd")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    """One credential the authenticator holds."""

    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


class SoftwareAuthenticator:
    """Creates credentials and answers challenges like a platform authenticator.

    ``synced`` (backup eligible and backed up, as iCloud Keychain or Google Password Manager)
    passkeys report a sign counter of 0 on every use; device-bound ones count up from 1.
    """

    def __init__(
        self,
        origin: str,
        *,
        synced: bool = True,
        aaguid: bytes = ICLOUD_KEYCHAIN,
        credential_id_bytes: int = 32,
    ) -> None:
        self.origin = origin
        self.synced = synced
        self.aaguid = aaguid
        self.credential_id_bytes = credential_id_bytes
        self.credentials: dict[bytes, Credential] = {}

    def create(
        self, options: dict[str, Any], *, user_verified: bool = True, credential_id: bytes | None = None
    ) -> dict[str, Any]:
        """Answer creation options (``{"publicKey": ...}`` as the server sends them).

        ``credential_id``: the id of the new credential (by default a random one).
        """
        public_key = options["publicKey"]
        rp_id = public_key["rp"]["id"]
        excluded = {unb64(item["id"]) for item in public_key.get("excludeCredentials", [])}
        if excluded & set(self.credentials):
            raise ValueError("InvalidStateError: the options exclude a credential this authenticator holds")
        credential = Credential(
            id=credential_id or secrets.token_bytes(self.credential_id_bytes),
            key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id,
            user_handle=unb64(public_key["user"]["id"]),
        )
        self.credentials[credential.id] = credential
        client_data = self._client_data("webauthn.create", public_key["challenge"])
        numbers = credential.key.public_key().public_numbers()
        cose_key = cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )
        attested = self.aaguid + struct.pack(">H", len(credential.id)) + credential.id + cose_key
        auth_data = self._auth_data(rp_id, user_verified, credential.sign_count, AT) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return _public_key_credential(
            credential.id,
            {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["hybrid", "internal"],
            },
        )

    def get(
        self,
        options: dict[str, Any],
        *,
        credential_id: bytes | None = None,
        user_verified: bool = True,
        sign_count: int | None = None,
        origin: str | None = None,
    ) -> dict[str, Any]:
        """Answer request options with a credential for their RP id (the only one, or ``credential_id``)."""
        public_key = options["publicKey"]
        rp_id = public_key["rpId"]
        matching = [c for c in self.credentials.values() if c.rp_id == rp_id]
        credential = self.credentials[credential_id] if credential_id else matching[-1]
        if sign_count is not None:
            credential.sign_count = sign_count
        elif not self.synced:
            credential.sign_count += 1
        client_data = self._client_data("webauthn.get", public_key["challenge"], origin=origin)
        auth_data = self._auth_data(rp_id, user_verified, credential.sign_count, 0)
        signature = credential.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return _public_key_credential(
            credential.id,
            {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(credential.user_handle),
            },
        )

    def _client_data(self, kind: str, challenge: str, *, origin: str | None = None) -> bytes:
        document = {
            "type": kind,
            "challenge": challenge,
            "origin": origin or self.origin,
            "crossOrigin": False,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def _auth_data(self, rp_id: str, user_verified: bool, sign_count: int, extra: int) -> bytes:
        flags = UP | (UV if user_verified else 0) | (BE | BS if self.synced else 0) | extra
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count)


def _public_key_credential(credential_id: bytes, response: dict[str, Any]) -> dict[str, Any]:
    """``PublicKeyCredential.toJSON()`` of a platform authenticator's answer around ``response``."""
    return {
        "id": b64(credential_id),
        "rawId": b64(credential_id),
        "type": "public-key",
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "response": response,
    }
