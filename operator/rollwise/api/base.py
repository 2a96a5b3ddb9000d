"""Shared pydantic configuration: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict


class ApiModel(BaseModel):
    """Base of every CRD model: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON form written to the cluster: camelCase, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Status models tolerate fields written by newer operator versions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )


@dataclass(frozen=True)
class OneOf:
    """An "exactly one of" rule over optional fields: the same rule as CEL for the API server
    (`rule()`, in a model's x-kubernetes-validations) and in Python (`check()`, in a
    model_validator), so the two never drift apart."""

    subject: str  # what sets the one-of, as the message names it ("trafficRouting")
    fields: tuple[str, ...]  # wire (camelCase) names
    message: str = ""
    # False: none given is fine in Python too (a default applies); the CEL rule still says one.
    required: bool = True

    @property
    def text(self) -> str:
        return self.message or f"{self.subject} sets exactly one of {', '.join(self.fields)}"

    def rule(self) -> JsonDict:
        """The CEL validation: `has(a) != has(b)` for two fields, else a count of exactly one."""
        if len(self.fields) == 2:
            a, b = self.fields
            cel = f"has(self.{a}) != has(self.{b})"
        else:
            listed = ", ".join(f"has(self.{f})" for f in self.fields)
            cel = f"[{listed}].filter(x, x).size() == 1"
        return {"rule": cel, "message": self.text}

    def given(self, model: BaseModel) -> list[str]:
        """The wire names of the fields set on `model`."""
        by_wire = {
            (info.alias or to_camel(name)): name for name, info in type(model).model_fields.items()
        }
        return [f for f in self.fields if getattr(model, by_wire[f]) is not None]

    def check(self, model: BaseModel) -> None:
        """ValueError with the rule's message unless exactly one field is set (or, when not
        required, at most one)."""
        count = len(self.given(model))
        if count > 1 or (count == 0 and self.required):
            raise ValueError(self.text)


def one_of(subject: str, *fields: str, message: str = "", required: bool = True) -> OneOf:
    """The "exactly one of `fields`" rule that `subject` obeys (see OneOf)."""
    return OneOf(subject=subject, fields=fields, message=message, required=required)
