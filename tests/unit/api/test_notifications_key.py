"""The notifications' transitions key survives YAML 1.1, the dialect kubectl reads manifests in."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from rollwise.api.hooks import Notifications, Transition

RECEIVERS = "receivers: [{name: chat, slack: {url: 'https://hooks.example/x'}}]\n"


def test_when_is_read_as_a_string_key_by_a_yaml_1_1_parser() -> None:
    data = yaml.safe_load("when: [Started, Promoted]\n" + RECEIVERS)  # PyYAML is YAML 1.1

    notifications = Notifications.model_validate(data)

    assert notifications.transitions == [Transition.STARTED, Transition.PROMOTED]


def test_an_unquoted_on_key_becomes_true_and_is_refused() -> None:
    data = yaml.safe_load("on: [Started]\n" + RECEIVERS)
    assert True in data  # what the apiserver saw as `spec.notifications.true`

    with pytest.raises(ValidationError):
        Notifications.model_validate(data)


def test_the_deprecated_on_spelling_still_works_when_quoted() -> None:
    data = yaml.safe_load('"on": [RolledBack]\n' + RECEIVERS)

    assert Notifications.model_validate(data).transitions == [Transition.ROLLED_BACK]


@pytest.mark.parametrize(
    "head", ['when: [Started]\n"on": [Started]\n', ""], ids=["both spellings", "neither"]
)
def test_transitions_are_listed_exactly_once(head: str) -> None:
    with pytest.raises(ValidationError, match="exactly once"):
        Notifications.model_validate(yaml.safe_load(head + RECEIVERS))
