from __future__ import annotations

import pytest

from gateway.config import parse_duration
from gateway.config.values import format_duration, quantity_value


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1h2m3s", 3723.0),
        ("1.5s", 1.5),
        ("250us", 0.00025),
        (10, 10.0),
        (2.5, 2.5),
        ("70", 70.0),
        (" 5s ", 5.0),
        ("-1s", -1.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "", "10x", "s", "1m 30s", "1.2.3s", True, None, [1], {"s": 1}, "nan"])
def test_parse_duration_rejects(text: object) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(("seconds", "text"), [(60.0, "1m"), (10.0, "10s"), (7200.0, "2h"), (0.5, "0.5s"), (90.0, "90s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "text, value",
    [
        ("512Mi", 512 * 2**20),
        ("0.2", 0.2),
        ("200m", 0.2),
        ("2", 2.0),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        ("1k", 1000.0),
        (" 1Gi ", 2**30),
    ],
)
def test_quantity_value(text: str, value: float) -> None:
    assert quantity_value(text) == pytest.approx(value)


def test_quantity_value_refuses_what_is_not_a_quantity() -> None:
    with pytest.raises(ValueError, match="not a quantity: '1 GB'"):
        quantity_value("1 GB")
