"""Network evidence: the dotted-quad fast path of truncate_ip equals the `ipaddress` rules;
the visitor's address behind trusted proxies cannot be chosen by the visitor."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.consents.evidence import Network, client_address, parse_networks, truncate_ip

pytestmark = pytest.mark.unit


def _reference(ip: str | None) -> str | None:
    """truncate_ip as it was before the fast path: `ipaddress` only."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 visitor seen by a dual-stack (::) listener
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


octets = st.one_of(
    st.integers(0, 300).map(str),
    st.sampled_from(["", "0", "00", "01", "001", "255", "256", "0255", "1 ", " 1", "+1", "-1"]),
    st.sampled_from(["\u0661", "\u00b2", "1_0", "0x1", "999", "1234", "ff"]),
)
dotted = st.lists(octets, min_size=1, max_size=6).map(".".join)


@given(st.one_of(dotted, st.text(max_size=20), st.ip_addresses().map(str)))
def test_truncate_ip_equals_ipaddress(ip: str) -> None:
    assert truncate_ip(ip) == _reference(ip)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("0.0.0.0", "0.0.0.0"),  # noqa: S104 - an address under test, not a bind
        ("255.255.255.255", "255.255.255.0"),
        ("010.0.0.1", None),
        ("256.0.0.1", None),
        ("1.2.3", None),
        ("2001:db8:1234:5678::1", "2001:db8:1234::"),
        # A server listening on :: sees IPv4 visitors as IPv4-mapped IPv6 addresses: truncated
        # as the IPv4 address they are (its /48 was "::", evidence of nothing).
        ("::ffff:1.2.3.4", "1.2.3.0"),
        ("::FFFF:203.0.113.77", "203.0.113.0"),
        (None, None),
        ("", None),
    ],
)
def test_truncate_ip_examples(ip: str | None, expected: str | None) -> None:
    assert truncate_ip(ip) == expected
    assert _reference(ip) == expected


# -- the visitor's address behind trusted proxies ---------------------------------------------
PROXIES = parse_networks("10.0.0.0/8, 2001:db8::/32,192.0.2.1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.7", None, PROXIES, "203.0.113.7"),  # no proxy in front
        ("203.0.113.7", "1.1.1.1", PROXIES, "203.0.113.7"),  # untrusted peer: header ignored
        ("10.1.2.3", "1.1.1.1, 203.0.113.7", (), "10.1.2.3"),  # no proxy configured
        ("10.1.2.3", "198.51.100.4", PROXIES, "198.51.100.4"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.4, 10.9.9.9", PROXIES, "198.51.100.4"),  # two proxies
        ("192.0.2.1", "2001:db9::5", PROXIES, "2001:db9::5"),
        ("2001:db8::1", " 198.51.100.4 ", PROXIES, "198.51.100.4"),
        ("10.1.2.3", "garbage, 198.51.100.4", PROXIES, "198.51.100.4"),  # left of it: ignored
        ("10.1.2.3", "198.51.100.4, garbage", PROXIES, None),  # a proxy vouched for garbage
        ("10.1.2.3", None, PROXIES, "10.1.2.3"),  # a proxy's own request
        ("10.1.2.3", "10.4.4.4", PROXIES, "10.4.4.4"),  # only proxies: the first one
        ("testclient", "198.51.100.4", PROXIES, "testclient"),
        # Behind a dual-stack (::) listener the proxy's IPv4 address arrives IPv4-mapped: it is
        # still the trusted proxy, and so is a mapped hop.
        ("::ffff:10.1.2.3", "198.51.100.4", PROXIES, "198.51.100.4"),
        ("::ffff:10.1.2.3", "198.51.100.4, ::ffff:10.9.9.9", PROXIES, "198.51.100.4"),
        ("10.1.2.3", "::ffff:198.51.100.4", PROXIES, "198.51.100.4"),
        (None, "198.51.100.4", PROXIES, None),
    ],
)
def test_client_address_examples(
    peer: str | None, forwarded: str | None, trusted: tuple[Network, ...], expected: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == expected


public = st.ip_addresses(v=4).filter(lambda a: a not in PROXIES[0] and str(a) != "192.0.2.1")


@given(
    spoofed=st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=12)), max_size=4),
    real=public,
    proxies=st.lists(st.ip_addresses(v=4, network="10.0.0.0/8"), min_size=1, max_size=3),
)
def test_a_client_cannot_choose_its_own_address(
    spoofed: list[str], real: ipaddress.IPv4Address, proxies: list[ipaddress.IPv4Address]
) -> None:
    """Whatever a client puts in X-Forwarded-For, the address the first trusted proxy saw wins."""
    hops = [h.replace(",", "") for h in spoofed] + [str(real)] + [str(p) for p in proxies[1:]]
    assert client_address(str(proxies[0]), ", ".join(hops), PROXIES) == str(real)


def test_bad_proxy_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        parse_networks("10.0.0.0/8, proxy.internal")
    assert parse_networks(" , ") == ()
