"""Logging in: the password step, the second step, and proving it again later.

Like Kratos's ``selfservice/flow/login`` with its strategies beside it, each way
of completing a login is a module of its own:

- :mod:`shared.login.password`: the first step, email and password.
- :mod:`shared.login.second_factor`: the second step, a TOTP or recovery code.
- :mod:`shared.login.reauthentication`: a signed-in user proves it again (account deletion).

The login sits above the account core and the second factor, which both stay
unaware of it: :mod:`shared.accounts` no longer imports :mod:`shared.mfa`.
"""

from __future__ import annotations

from shared.login.password import log_in
from shared.login.reauthentication import reauthenticate
from shared.login.second_factor import issue_challenge_for, log_in_with_code

__all__ = ["issue_challenge_for", "log_in", "log_in_with_code", "reauthenticate"]
