"""The base every kind's decision pass is built on: the status it builds, changed only through
a checked update, the clock, and the earliest requeue.

`model_copy(update=...)` silently drops a mistyped field name; `checked_update` raises instead.
Each kind's pass adds a `set(**changes: Unpack[<Kind>StatusChanges])` over it, so mypy reports
a mistyped field too (a unit test keeps each TypedDict equal to its model's fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)
# Nothing is asked for sooner than this: a pass that wants "now" still yields to the queue.
MIN_REQUEUE_S = 0.5


def checked_update(model: ModelT, changes: Mapping[str, object]) -> ModelT:
    """`model` with `changes` applied; TypeError naming any field the model does not have."""
    unknown = set(changes) - set(type(model).model_fields)
    if unknown:
        raise TypeError(f"{type(model).__name__} has no field {', '.join(sorted(unknown))}")
    return model.model_copy(update=dict(changes))


@dataclass(kw_only=True)
class KindPass(Generic[ModelT]):
    """What every kind's pass shares: the status being built, the clock, the earliest requeue."""

    status: ModelT
    now: datetime
    requeue: float | None = None

    def update(self, changes: Mapping[str, object]) -> None:
        """Change status fields; an unknown name is a TypeError (model_copy would drop it)."""
        self.status = checked_update(self.status, changes)

    def wake_in(self, seconds: float) -> None:
        """Look again in `seconds` at the latest (the earliest wish of the pass wins)."""
        seconds = max(MIN_REQUEUE_S, seconds)
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    def wake_at(self, when: datetime) -> None:
        self.wake_in(max(0.0, (when - self.now).total_seconds()))
