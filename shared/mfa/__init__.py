"""Building blocks of the second factor: TOTP (RFC 6238), recovery codes, secrets sealed at rest.

Pure functions only, free of storage and HTTP, so that the flows built on them
can be tested apart from them:

:mod:`shared.mfa.encryption`
    AES-256-GCM for the TOTP secrets at rest, with key ids and key rotation.
:mod:`shared.mfa.totp`
    New secrets, the ``otpauth://`` URI and its QR code, and code checks that
    refuse a code (or any earlier one) used before.
:mod:`shared.mfa.recovery_codes`
    One-time recovery codes and the keyed digests that store them.

Import the modules by name (``from shared.mfa import totp``); each documents
its own public names.
"""
