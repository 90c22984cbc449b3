"""The client's address behind trusted proxies (TRUSTED_PROXIES and X-Forwarded-For)."""

from __future__ import annotations

import pytest

from lending.settings import Settings, SettingsError, trusted_proxies
from lending.web.clients import forwarded_client, parse_address

LOCAL = trusted_proxies("127.0.0.1")
BALANCERS = trusted_proxies("127.0.0.1, 10.0.0.0/8, fd00::/8")


def test_without_trusted_proxies_the_header_is_ignored():
    assert forwarded_client("198.51.100.4", ["203.0.113.7"], ()) == "198.51.100.4"


def test_a_header_from_an_untrusted_peer_is_ignored():
    assert forwarded_client("198.51.100.4", ["203.0.113.7"], LOCAL) == "198.51.100.4"


def test_a_trusted_proxy_names_the_client():
    assert forwarded_client("127.0.0.1", ["203.0.113.7"], LOCAL) == "203.0.113.7"


def test_the_rightmost_untrusted_address_wins_so_a_client_cannot_pick_its_own():
    # The client sent "X-Forwarded-For: 1.2.3.4"; our proxy appended what it saw.
    assert forwarded_client("127.0.0.1", ["1.2.3.4, 203.0.113.7"], LOCAL) == "203.0.113.7"
    # Two of our own proxies in a row (a load balancer, then nginx): both are skipped.
    assert forwarded_client("127.0.0.1", ["1.2.3.4, 203.0.113.7, 10.1.2.3"], BALANCERS) == "203.0.113.7"


def test_header_lines_are_read_in_order_as_one_list():
    assert forwarded_client("127.0.0.1", ["1.2.3.4", "203.0.113.7, 10.0.0.5"], BALANCERS) == "203.0.113.7"


def test_garbage_left_of_the_client_is_never_read():
    assert forwarded_client("127.0.0.1", ["<script>, not an address, 203.0.113.7"], LOCAL) == "203.0.113.7"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "203.0.113.7, unknown",
        "203.0.113.7,,",
        "203.0.113.7, [::1",
        "300.1.2.3",
        "example.org",
        "\x00",
        "203.0.113.7, 10.0.0.1 10.0.0.2",
    ],
)
def test_a_header_that_cannot_be_read_falls_back_to_the_peer(header):
    assert forwarded_client("127.0.0.1", [header], BALANCERS) == "127.0.0.1"


@pytest.mark.parametrize("lines", [[], [""], ["  "], [" , "]])
def test_a_trusted_proxy_without_a_header_is_the_client(lines):
    assert forwarded_client("127.0.0.1", lines, LOCAL) == "127.0.0.1"


def test_when_every_hop_is_ours_the_furthest_one_asked():
    assert forwarded_client("127.0.0.1", ["10.0.0.9, 10.0.0.5"], BALANCERS) == "10.0.0.9"


def test_ports_and_brackets_as_load_balancers_write_them():
    assert forwarded_client("127.0.0.1", ["203.0.113.7:51234"], LOCAL) == "203.0.113.7"
    assert forwarded_client("127.0.0.1", ["[2001:db8::1]:51234"], LOCAL) == "2001:db8::1"
    assert forwarded_client("127.0.0.1", ["2001:DB8:0::1"], LOCAL) == "2001:db8::1"


def test_ipv6_proxies_and_ipv4_peers_on_a_dual_stack_socket():
    assert forwarded_client("fd00::2", ["203.0.113.7"], BALANCERS) == "203.0.113.7"
    assert forwarded_client("::ffff:127.0.0.1", ["203.0.113.7"], LOCAL) == "203.0.113.7"
    assert forwarded_client("127.0.0.1", ["::ffff:203.0.113.7"], LOCAL) == "203.0.113.7"


def test_an_unknown_peer():
    assert forwarded_client(None, ["203.0.113.7"], LOCAL) == "unknown"
    assert forwarded_client("testclient", ["203.0.113.7"], LOCAL) == "testclient"


def test_a_very_long_chain_is_read_only_so_far():
    header = ", ".join(["10.0.0.1"] * 1000)
    assert forwarded_client("127.0.0.1", [header], BALANCERS) == "10.0.0.1"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:80", "203.0.113.7"),
        ("[::1]", "::1"),
        ("[::1]:80", "::1"),
        ("::1", "::1"),
        ("unknown", None),
        ("", None),
        ("[::1", None),
        ("1.2.3", None),
        ("203.0.113.7:80:90", None),
    ],
)
def test_parse_address(text, expected):
    found = parse_address(text)
    assert (str(found) if found is not None else None) == expected


def test_the_setting_reads_addresses_and_networks():
    settings = Settings.from_env({"SECRET_KEY": "k" * 40, "TRUSTED_PROXIES": "127.0.0.1, 172.16.0.0/12,::1"})
    assert [str(n) for n in settings.trusted_proxies] == ["127.0.0.1/32", "172.16.0.0/12", "::1/128"]
    assert Settings.from_env({"SECRET_KEY": "k" * 40}).trusted_proxies == ()
    assert [str(n) for n in trusted_proxies("10.1.2.3/8")] == ["10.0.0.0/8"]  # host bits are forgiven


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "127.0.0.1;10.0.0.1", "*"])
def test_a_bad_setting_stops_the_app_with_one_line(value):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"SECRET_KEY": "k" * 40, "TRUSTED_PROXIES": value})
    assert "TRUSTED_PROXIES" in str(raised.value) and "\n" not in str(raised.value)
