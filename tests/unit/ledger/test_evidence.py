"""Network evidence: the dotted-quad fast path of truncate_ip equals the `ipaddress` rules."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.consents.evidence import truncate_ip

pytestmark = pytest.mark.unit


def _reference(ip: str | None) -> str | None:
    """truncate_ip as it was before the fast path: `ipaddress` only."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
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
        ("::ffff:1.2.3.4", "::"),
        (None, None),
        ("", None),
    ],
)
def test_truncate_ip_examples(ip: str | None, expected: str | None) -> None:
    assert truncate_ip(ip) == expected
    assert _reference(ip) == expected
