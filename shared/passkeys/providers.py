"""The names of well-known passkey providers, by the AAGUID their passkeys report.

A short list of the providers most users have, from the community-kept list of
passkey provider AAGUIDs (github.com/passkeydeveloper/passkey-authenticator-aaguids),
so that a list of passkeys can say "iCloud Keychain" rather than nothing. An
AAGUID not here (or all zeros, as many security keys and "none" attestation
report) has no name; the passkey's own name is what the user chose.
"""

from __future__ import annotations

__all__ = ["PROVIDERS", "provider_name"]

PROVIDERS: dict[str, str] = {
    "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
    "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
    "adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
    "08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
    "9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
    "6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
    "53414d53-554e-4700-0000-000000000000": "Samsung Pass",
    "bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
    "d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
    "531126d6-e717-415c-9320-3d9aa6981239": "Dashlane",
    "fdb141b2-5d84-443e-8a35-4698c205a502": "KeePassXC",
}


def provider_name(aaguid: str) -> str | None:
    """The provider's name for ``aaguid`` (``xxxxxxxx-xxxx-...``), or ``None`` when it is not known."""
    return PROVIDERS.get(aaguid.lower())
