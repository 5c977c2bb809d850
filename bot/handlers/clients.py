"""Who is asking: the client address behind a request, for lockouts and rate limits.

Behind a reverse proxy every request comes from the proxy's address, and one attacker could
then lock every agent out or use up everybody's allowance. A proxy listed in
``BILLBOT_TRUSTED_PROXIES`` is believed about the client (the nearest address in
``X-Forwarded-For`` that is not itself a trusted proxy); nobody else is.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from bot.config import IPNetwork
from bot.keys import SETTINGS


def _trusted(address: str, proxies: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: web.Request) -> str:
    """The client's IP address as text ("-" when the transport does not say)."""
    remote = request.remote or "-"
    settings = request.app.get(SETTINGS)
    proxies = settings.trusted_proxies if settings is not None else ()
    if not proxies or not _trusted(remote, proxies):
        return remote
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    for hop in reversed(hops):  # the proxy appends: the rightmost untrusted hop is the client
        if hop and not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # a forged or broken header: fall back to the proxy itself
    return remote
