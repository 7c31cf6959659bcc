"""The tables that map manifest keys to dataclass field names name only fields that exist.

Revisions and scaling are translated through the typed `RevisionDraft` and `ScalingDraft` (mypy checks
their field names); GatewayConfig sections still go through key → field-name tables, so a misspelt field
name there is caught here rather than at the first document that uses the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

import pytest

from gateway.config import gateway_config
from gateway.config.model import ActivatorSettings, AutoscalerSettings, ProxySettings


@pytest.mark.parametrize(
    ("table", "target"),
    [
        (gateway_config._AUTOSCALER, AutoscalerSettings),
        (gateway_config._ACTIVATOR, ActivatorSettings),
        (gateway_config._PROXY, ProxySettings),
    ],
    ids=["spec.autoscaler", "spec.activator", "spec.proxy"],
)
def test_every_field_name_in_a_key_table_is_a_field(table: Mapping[str, tuple[str, object]], target: type) -> None:
    names = {f.name for f in fields(target)}
    assert {name for name, _ in table.values()} - names == set()
