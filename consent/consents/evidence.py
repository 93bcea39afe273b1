"""Network evidence kept with a consent (tenant opt-in): truncated, then encrypted."""

from __future__ import annotations

import ipaddress

import msgspec

__all__ = ["NetworkEvidence", "truncate_ip"]

_UA_MAX = 200


def truncate_ip(ip: str | None) -> str | None:
    """IPv4 to its /24, IPv6 to its /48: enough to show a region, not a household."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48  # noqa: PLR2004
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


class NetworkEvidence(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ip_prefix: str | None = None
    user_agent: str | None = None

    @classmethod
    def from_request(cls, ip: str | None, user_agent: str | None) -> NetworkEvidence:
        return cls(
            ip_prefix=truncate_ip(ip), user_agent=(user_agent or None) and user_agent[:_UA_MAX]
        )
