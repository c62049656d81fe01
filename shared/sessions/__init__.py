"""Sessions per device: one a sign-in, listed, touched when used, and ended alone or all at once.

- :mod:`.devices`: the device session (its id, user agent, times, ``amr``) and the rules it lives by;
- :mod:`.store`: starting, touching and ending sessions on the account row;

Refreshing a session with a refresh token (``POST /api/token/refresh``) is
:mod:`shared.accounts.token_refresh`: it reads the account and signs tokens.
"""
