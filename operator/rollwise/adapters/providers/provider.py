"""The MetricProvider Protocol: one measurement of a gate's resolved query.

`measure` never raises: every outcome is a MetricSample with a value, no value (no data: an
empty vector, NaN, +-Inf) or an error (the provider unreachable, a timeout, a bad query, several
series). The core turns those into Passed/Failed/Inconclusive/Error; "no data" is never zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from rollwise.core.model import GateQuery, MetricSample


class MetricProvider(Protocol):
    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        """Run one gate query; never raises."""
        ...
