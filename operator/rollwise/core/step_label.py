"""The step in progress as people count it, for the Step column and the plugin alike."""

from __future__ import annotations


def step_label(index: int | None, total: int) -> str | None:
    """ "2/6" for index 1 of 6 steps; "6/6" once every step has completed; None off a rollout.

    Status keeps the 0-based `currentStepIndex` the core reasons with; people count from 1,
    and a printer column cannot add 1 to a JSONPath, so the label is written beside it.
    """
    if index is None:
        return None
    return f"{min(index + 1, total)}/{total}"
