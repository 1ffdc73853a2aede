"""Who is asking: the client's address and scheme behind a reverse proxy.

Forwarding headers (X-Forwarded-For, X-Real-IP, X-Forwarded-Proto) are believed only when the
connection comes from a proxy listed in TRUSTED_PROXIES; anyone else could write them to dodge a
limit or a lockout. Without a trusted proxy every client behind nginx would share nginx's
address, and one person's failed sign-ins would lock everyone out.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES entries (addresses or networks); a wrong entry names itself."""
    networks = []
    for proxy in proxies:
        try:
            networks.append(ipaddress.ip_network(proxy, strict=False))
        except ValueError as error:
            raise ValueError(f"TRUSTED_PROXIES: '{proxy}' is not an address or network") from error
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _is_trusted(address: str | None, request: web.Request) -> bool:
    parsed = _address(address or "")
    networks = trusted_networks(request.app["settings"].trusted_proxies)
    return parsed is not None and any(parsed in network for network in networks)


def client_ip(request: web.Request) -> str:
    """The client's address: the peer, or what a trusted proxy says the client was."""
    peer = request.remote or "unknown"
    if not _is_trusted(peer, request):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    # Right to left: each trusted proxy appended the address it saw; the first untrusted one is
    # the client (what is further left was written by the client and proves nothing).
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return peer  # a garbled chain proves nothing
        if not _is_trusted(hop, request):
            return str(address)
    if hops:  # every hop is a trusted proxy: the client is the first of them
        return str(_address(hops[0]))
    real_ip = _address(request.headers.get("X-Real-IP", ""))
    return str(real_ip) if real_ip is not None else peer


def is_https(request: web.Request) -> bool:
    """Whether the client's connection is TLS (directly, or at a trusted proxy)."""
    if request.secure:
        return True
    if not _is_trusted(request.remote, request):
        return False
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded == "https"
