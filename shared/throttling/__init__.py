"""Throttling: the lockout of an email after wrong passwords or codes, and the limits per client address.

- :mod:`.lockout`: the lockout policy and the failure record it reads (backoff, hourly cap);
- :mod:`.rate_limiter`: fixed-window counters per client address, for register, login and mail;
- :mod:`.client_address`: which address in ``X-Forwarded-For`` is the client's;
- :mod:`.store`: the failure record's properties on the login row.
"""
