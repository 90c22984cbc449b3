"""Who is on the other end of a request: the client's network address, which sign-in and
referral-code limits count by.

Behind a reverse proxy or load balancer every connection comes from the proxy, so one
person's wrong passwords would pause sign-in for everyone. A proxy listed in
``TRUSTED_PROXIES`` appends the address it saw to ``X-Forwarded-For``; reading that header
from the right, the first address that is not one of our own proxies is the client. Whatever
lies further left was written by the client and proves nothing, so it is never read. A header
from anyone else, or one that cannot be read, is ignored: the peer is the client then.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from litestar.connection import ASGIConnection

from lending.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "unknown"
MAX_HOPS = 20  # a longer chain than any real set of proxies: read no further than this


def parse_address(text: str) -> Address | None:
    """One entry of X-Forwarded-For: ``203.0.113.7``, ``2001:db8::1``, or either with a port
    as some load balancers write them (``203.0.113.7:5123``, ``[2001:db8::1]:5123``); None when
    it is none of these (``unknown``, a name, garbage)."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, _port = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's way of writing an IPv4 peer
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def forwarded_client(peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]) -> str:
    """The client's address, given the direct peer, the X-Forwarded-For header lines (in the
    order they came) and the trusted proxies."""
    if not peer:
        return UNKNOWN
    peer_address = parse_address(peer)
    if peer_address is None or not _trusted(peer_address, proxies):
        return peer
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    if not hops or not "".join(hops).strip():
        return peer  # a trusted proxy that says nothing: the request is its own (a health check)
    nearest_proxy = peer_address
    for hop in reversed(hops[-MAX_HOPS:]):
        address = parse_address(hop)
        if address is None:
            return peer  # our proxy would not write this; believe nothing in the header
        if not _trusted(address, proxies):
            return str(address)
        nearest_proxy = address
    return str(nearest_proxy)  # every hop is one of ours: the furthest of them asked


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The address of whoever sent this request, for counting attempts by address."""
    peer = connection.client.host if connection.client else None
    proxies = connection.app.state.settings.trusted_proxies
    if not proxies:
        return peer or UNKNOWN
    return forwarded_client(peer, connection.headers.getall("x-forwarded-for", []), proxies)
