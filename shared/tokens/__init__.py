"""Tokens: the signed JWTs the app issues and checks.

- :mod:`.access_tokens`: issuing and verifying access tokens (Mobile Apps / App Service and the
  Mobile Services "zumo" formats) and the second factor's challenge tokens.
- :mod:`.jwks`: the public key set and the discovery document.
- :mod:`.refresh_tokens`: opaque refresh tokens: keyed digests, derived successors, reuse.
- :mod:`.key_history`: when each key was first published and first signed (``tools.admin keys status``).

The ES256/RS256 keys themselves (PEM settings, RFC 7638 ``kid``) are parsed with the other
settings, in :mod:`shared.settings.signing`.
"""
