"""Pod tolerations are checked as the API server would check them, with errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load
from tests.config.support import one_service, paddle, problems, write

LABEL = "document 1 (PaddleService/foo)"
AT = "spec.default.tolerations[0]"


def spec(toleration: str) -> str:
    return f"default:\n  command: x\n  tolerations: [{toleration}]\n"


@pytest.mark.parametrize(
    "toleration",
    [
        "{key: xpu, operator: Exists, effect: NoSchedule}",
        "{key: xpu, operator: Equal, value: 'on', effect: PreferNoSchedule}",
        "{key: xpu, value: 'on'}",  # operator Equal by default
        "{operator: Exists}",  # every taint
        "{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}",
    ],
)
def test_valid_tolerations_are_kept_as_given(tmp_path: Path, toleration: str) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo", spec(toleration)))
    kept = one_service(load([path])).default.tolerations
    assert len(kept) == 1 and kept[0].get("key") in (None, "xpu", "node.kubernetes.io/unreachable")


@pytest.mark.parametrize(
    ("toleration", "message"),
    [
        ("{key: a, operator: Maybe}", f"{AT}.operator: must be one of Exists, Equal, got 'Maybe'"),
        (
            "{key: a, operator: Exists, effect: Sometimes}",
            f"{AT}.effect: must be one of NoSchedule, PreferNoSchedule, NoExecute, got 'Sometimes'",
        ),
        ("{key: a, operator: Exists, value: b}", f"{AT}.value: must be empty with operator Exists, got 'b'"),
        ("{operator: Equal, value: b}", f"{AT}.operator: must be Exists when no key is given (a toleration of every taint)"),
        ("{key: a, operator: Exists, tolerationSeconds: 5}", f"{AT}.tolerationSeconds: only applies with effect NoExecute"),
        (
            "{key: a, operator: Exists, effect: NoExecute, tolerationSeconds: soon}",
            f"{AT}.tolerationSeconds: must be an integer, got 'soon'",
        ),
        ("{key: [a], operator: Exists}", f"{AT}.key: must be a string, got a list"),
        (
            "{key: a, operator: Exists, efect: NoSchedule}",
            f"{AT}.efect: unknown key (did you mean effect?)",
        ),
    ],
)
def test_a_bad_toleration_is_a_clear_error(tmp_path: Path, toleration: str, message: str) -> None:
    path = write(tmp_path, "x.yaml", paddle("foo", spec(toleration)))
    assert problems([path]) == [f"{path}: {LABEL}: {message}"]
