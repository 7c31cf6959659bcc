"""Label and field selectors, read as the API server reads them."""

from __future__ import annotations

import pytest

from tests.kube.selection import SelectorError, parse_fields, parse_labels, selector_from_match_labels

POD = {
    "metadata": {"name": "web-1", "namespace": "ns", "labels": {"app": "web", "tier": "front"}},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app!=api", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("app in (api, web)", True),
        ("app in (api)", False),
        ("app notin (api,db)", True),
        ("app notin (web)", False),
        ("missing notin (web)", True),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("app=web,tier=front", True),
        ("app=web, tier=back", False),
        ("app in (web),!missing,tier", True),
        ("example.com/role=x", False),
    ],
)
def test_label_selectors_select_as_the_api_server_does(selector: str, selected: bool) -> None:
    assert parse_labels(selector).matches(POD) is selected


@pytest.mark.parametrize("selector", ["app=(web", "app in web", "=web", "app in (web", "a b"])
def test_a_malformed_label_selector_is_an_error_naming_it(selector: str) -> None:
    with pytest.raises(SelectorError, match="label selector"):
        parse_labels(selector)


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name==web-2", False),
        ("metadata.name!=web-2", True),
        ("metadata.namespace=ns,status.phase=Running", True),
        ("status.phase!=Running", False),
        ("spec.nodeName=", True),
    ],
)
def test_field_selectors_on_indexed_fields(selector: str, selected: bool) -> None:
    assert parse_fields(selector).matches(POD) is selected


def test_a_field_the_api_server_does_not_index_is_refused() -> None:
    with pytest.raises(SelectorError, match="field label not supported: spec.replicas"):
        parse_fields("spec.replicas=1")
    with pytest.raises(SelectorError, match="invalid field selector"):
        parse_fields("metadata.name")


def test_a_deployment_selector_as_the_text_a_scale_reports() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "c", "operator": "In", "values": ["x", "y"]},
            {"key": "d", "operator": "Exists"},
            {"key": "e", "operator": "DoesNotExist"},
        ],
    }
    text = selector_from_match_labels(selector)
    assert text == "a=1,b=2,c in (x,y),d,!e"
    assert parse_labels(text).matches({"metadata": {"labels": {"a": "1", "b": "2", "c": "y", "d": ""}}})
    assert selector_from_match_labels(None) == ""
