"""Sessions per device: one a sign-in, listed, touched when used, and ended alone or all at once.

- :mod:`.devices`: the device session (its id, user agent, times, ``amr``) and the rules it lives by.
- :mod:`.refresh_store`: the ETag-guarded write that spends a refresh token on its session.
- :mod:`.refresh_flow`: ``POST /api/token/refresh``: rotation, the grace retry, reuse.
"""
