"""Shared pydantic configuration: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from rollwise.api.field_docs import description_of


class ApiModel(BaseModel):
    """Base of every CRD model: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Descriptions live in field_docs (one table, cheap to merge); a field's own
        # `description=` wins. Rebuilding makes the JSON schema (and so the CRDs) carry them.
        super().__pydantic_init_subclass__(**kwargs)
        described = False
        for name, field in cls.model_fields.items():
            text = description_of(cls.__module__, cls.__name__, name)
            if text and not field.description:
                field.description = text
                described = True
        if described:
            cls.model_rebuild(force=True, raise_errors=False)

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
