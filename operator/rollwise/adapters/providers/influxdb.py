"""InfluxDB 1.x gates: an InfluxQL query over HTTP `/query`, the value the last row of its one
series. No series is no data (never zero)."""

from __future__ import annotations

import math
from typing import Any

from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.providers.metric_http import AnswerError, JsonMetricSource


def influx_value(payload: Any) -> float | None:
    """The gate value in an InfluxDB `/query` answer (one statement, `epoch` irrelevant)."""
    if not isinstance(payload, dict):
        raise AnswerError("InfluxDB answered JSON of another shape; its answer is not shown")
    if payload.get("error"):
        raise AnswerError("InfluxDB answered an error (a bad query?); its text is not shown")
    results = payload.get("results") or []
    if len(results) != 1:
        raise AnswerError(f"query has {len(results)} statements; a gate runs exactly one")
    result = results[0]
    if result.get("error"):
        raise AnswerError("InfluxDB answered an error for the statement; its text is not shown")
    series = result.get("series") or []
    if not series:
        return None
    if len(series) > 1:
        raise AnswerError(
            f"query returned {len(series)} series; aggregate them to one (drop GROUP BY tags)"
        )
    columns = series[0].get("columns") or []
    rows = series[0].get("values") or []
    if len(columns) != 2:
        raise AnswerError(
            f"query selects {len(columns) - 1} fields ({', '.join(columns[1:])}); select one"
        )
    if not rows:
        return None
    value = rows[-1][1]
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnswerError("query returned a value that is not a number") from None
    return number if math.isfinite(number) else None


class InfluxDBProvider(JsonMetricSource):
    """The influxdb provider: GET /query?db=<database>&q=<InfluxQL>."""

    def __init__(self, pool_size: int = 8, policy: OutboundPolicy | None = None) -> None:
        super().__init__("InfluxDB", "/query", "q", influx_value, pool_size, policy=policy)
