"""Passkeys (WebAuthn): sign in with Face ID, a fingerprint or a security key.

One module per concept, each small:

- :mod:`~shared.settings.passkeys`: the settings (``AUTH_PASSKEY_*``), the origins they allow;
- :mod:`~shared.passkeys.association`: the two files that let iOS and Android apps use the RP id;
- :mod:`~shared.passkeys.challenges`: challenges in Table Storage, each used once;
- :mod:`~shared.passkeys.account_row`: what the account row holds (user handle, credential ids);
- :mod:`~shared.passkeys.credentials`: the credential rows;
- :mod:`~shared.passkeys.providers`: the names of well-known passkey providers by AAGUID;
- :mod:`~shared.passkeys.service`: this process's passkey service (settings, stores, accounts);
- :mod:`~shared.passkeys.registration`, :mod:`~shared.passkeys.authentication`,
  :mod:`~shared.passkeys.management`: the flows.

This package imports nothing heavy on its own: ``webauthn`` (and so
``cryptography``) is loaded by the flow modules, which only the passkey
functions import, so cold start of the other functions stays as it was.
"""
