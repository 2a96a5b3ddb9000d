"""Graphite gates: the render API (`/render?format=json`), the value the newest non-null
datapoint of the target's one series. No series or only nulls is no data (never zero)."""

from __future__ import annotations

import math
from typing import Any

from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.providers.metric_http import AnswerError, JsonMetricSource


def graphite_value(payload: Any) -> float | None:
    """The gate value in a render answer: `[{"target": ..., "datapoints": [[v, t], ...]}]`."""
    if not isinstance(payload, list):
        raise AnswerError("Graphite answered JSON of another shape; its answer is not shown")
    if not payload:
        return None
    if len(payload) > 1:
        raise AnswerError(
            f"target returned {len(payload)} series; aggregate them to one, e.g. sumSeries(...)"
        )
    try:
        points = [p[0] for p in payload[0]["datapoints"]]
    except (KeyError, TypeError, IndexError):
        raise AnswerError("Graphite answered a series of another shape; not shown") from None
    for value in reversed(points):
        if value is not None:
            number = float(value)
            return number if math.isfinite(number) else None
    return None


class GraphiteProvider(JsonMetricSource):
    """The graphite provider: GET /render?format=json&target=<target>&from=<from>."""

    def __init__(self, pool_size: int = 8, policy: OutboundPolicy | None = None) -> None:
        super().__init__(
            "Graphite",
            "/render",
            "target",
            graphite_value,
            pool_size,
            (("format", "json"),),
            policy,
        )
