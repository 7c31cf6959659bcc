from __future__ import annotations

import pytest

from gateway.config.addresses import Address, AddressError, parse_address, split_hostport


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:8080", Address("0.0.0.0", 8080)),
        ("127.0.0.1:0", Address("127.0.0.1", 0)),
        (":9090", Address("", 9090)),
        ("localhost:65535", Address("localhost", 65535)),
        ("Gateway.Example.com:80", Address("Gateway.Example.com", 80)),
        ("[::1]:8080", Address("::1", 8080)),
        ("[::]:0", Address("::", 0)),
    ],
)
def test_parse_address(text: str, address: Address) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense", "no port in 'nonsense': expected HOST:PORT like 0.0.0.0:8080"),
        ("", "no port in '': expected HOST:PORT like 0.0.0.0:8080"),
        ("localhost:", "the port after ':' is missing"),
        ("localhost:http", "port 'http' is not a number"),
        ("localhost:-1", "port '-1' is not a number"),
        ("localhost:²", "port '²' is not a number"),
        ("1.2.3.4:99999", "port 99999 is out of range 0..65535"),
        ("::1:8080", "IPv6 host '::1' must be in brackets, like [::1]:8080"),
        ("[::1:8080", "host '[::1' is not an IPv6 address in brackets like [::1]"),
        ("[nope]:8080", "host '[nope]' is not an IPv6 address in brackets like [::1]"),
        ("::1]:8080", "host '::1]' is not an IPv6 address in brackets like [::1]"),
        ("my_host:8080", "host 'my_host' is not a DNS name or an IP address"),
        ("a b:8080", "host 'a b' is not a DNS name or an IP address"),
    ],
)
def test_parse_address_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert str(info.value) == message


def test_split_hostport_names_the_setting() -> None:
    assert split_hostport("[::1]:8080", "listen") == ("::1", 8080)
    with pytest.raises(ValueError) as info:
        split_hostport("nonsense", "admin listen")
    assert str(info.value) == "admin listen: expected HOST:PORT, got 'nonsense'"
    assert isinstance(info.value.__cause__, AddressError)
