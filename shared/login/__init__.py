"""Logging in: the password step, the second step, and proving it again later.

Like Kratos's ``selfservice/flow/login`` with its strategies beside it, each way
of completing a login is a module of its own:

- :mod:`shared.login.password`: the first step, email and password.
- :mod:`shared.login.second_factor`: the second step, a TOTP or recovery code.
- :mod:`shared.login.reauthentication`: a signed-in user proves it again (account deletion).

The login sits above the account core and the second factor, which both stay
unaware of it: :mod:`shared.accounts` no longer imports :mod:`shared.mfa`.

Import the steps from their modules: this package imports none of them, so
that a function that logs in with a password does not load the second factor's
libraries (pyotp, cryptography) at cold start; they load when a second factor
is on.
"""
