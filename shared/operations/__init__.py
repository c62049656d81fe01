"""What an operator runs: the admin tool's operations on one account, and the scheduled cleanup.

- :mod:`.admin`: show, disable, enable, unlock, revoke, reset the second factor, export, delete;
- :mod:`.cleanup`: the timer's sweep of dead rows (expired codes, stale records, abandoned sign-ups).
"""
