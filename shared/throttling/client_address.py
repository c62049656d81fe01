"""The address a request came from, as the platform's front end saw it.

On Azure Functions (as on App Service) requests reach the app through the
platform's front ends, which *append* the address of the peer they accepted the
connection from to ``X-Forwarded-For`` (as ``IP:port``; an IPv6 address may be
in brackets). Anything to the left of that entry came from the client, or from
proxies in front of the app, and can say anything. So the trusted entry is the
rightmost one, or, behind ``AUTH_TRUSTED_PROXY_COUNT`` further proxies of your
own (Front Door, API Management, Application Gateway), the one that many places
further left: each trusted proxy appends the address it saw.

Clients are counted by address; IPv6 clients by their ``/64`` network, because
one device can use any of the 2^64 addresses of its network.
"""

from __future__ import annotations

import ipaddress

__all__ = ["ClientAddress", "client_address"]

ClientAddress = ipaddress.IPv4Address | ipaddress.IPv6Network

#: The network an IPv6 client is counted by.
IPV6_CLIENT_PREFIX = 64


def client_address(forwarded_for: str | None, *, trusted_proxies: int = 0) -> ClientAddress | None:
    """Return the client's address from an ``X-Forwarded-For`` value, or ``None`` if it has none.

    ``trusted_proxies`` is how many proxies of your own sit in front of the
    platform's front end; the entry they and the front end did not append is
    the client's. If there are fewer entries than that, the request did not
    come through those proxies, and the leftmost entry is taken.
    """
    if not forwarded_for:
        return None
    entries = [entry.strip() for entry in forwarded_for.split(",")]
    entry = entries[max(len(entries) - 1 - trusted_proxies, 0)]
    address = _parse(entry)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
    return address


def _parse(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1`` or ``[2001:db8::1]:5678``."""
    if entry.startswith("["):
        host = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:
        host = entry.partition(":")[0]
    else:
        host = entry
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
