"""Tokens: the signed JWTs the app issues and checks.

- :mod:`.access_tokens`: issuing and verifying access tokens (Mobile Apps / App Service and the
  Mobile Services "zumo" formats) and the second factor's challenge tokens.
"""
