"""The second factor: TOTP (RFC 6238), recovery codes, secrets sealed at rest, and its steps.

The steps: :mod:`shared.mfa.flows` (enrol, confirm, regenerate, turn off),
:mod:`shared.mfa.auth` (the checks of a code), :mod:`shared.mfa.store` (the
second-factor row). A login's second step is :mod:`shared.login.second_factor`.
The building blocks, pure functions free of storage and HTTP:

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
