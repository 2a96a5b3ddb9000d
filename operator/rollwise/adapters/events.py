"""The one Event recorder: core/v1 Events on a rollwise object (a ProgressiveService, a
ReleaseTrain), a repeat counted on the first Event instead of a flood.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import (
    EVENTS,
    KubeApi,
)
from rollwise.adapters.manifests.builders import (
    event_manifest,
    rfc3339,
)
from rollwise.adapters.manifests.types import COMPONENT, ObjectRef
from rollwise.core.model import (
    EventRecord,
)


@dataclass
class _Series:
    name: str
    count: int
    posted: float  # monotonic


class EventRecorder:
    """Posts core/v1 Events on a rollwise object (a ProgressiveService, a ReleaseTrain, a
    FleetRollout), for every kind the same way. A repeat of the same (type, reason, message)
    within `window` seconds patches the first Event's count and lastTimestamp, as the
    Kubernetes event recorder does, instead of creating a flood."""

    def __init__(
        self,
        api: KubeApi,
        instance: str,
        *,
        window: float = 3600.0,
        limit: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        component: str = COMPONENT,
    ) -> None:
        self._api = api
        self._instance = instance
        self._component = component
        self._window = window
        self._limit = limit
        self._clock = clock
        self._series: OrderedDict[tuple[str, str, bool, str], _Series] = OrderedDict()
        self._lock = threading.Lock()

    def post(self, ref: ObjectRef, record: EventRecord, now: datetime) -> None:
        key = (ref.uid, record.reason, record.warning, record.message)
        with self._lock:
            series = self._series.get(key)
        if series is not None and self._clock() - series.posted < self._window:
            try:
                self._api.patch(
                    EVENTS,
                    ref.namespace,
                    series.name,
                    {"count": series.count + 1, "lastTimestamp": rfc3339(now)},
                )
            except AdapterError as err:
                if err.status != 404:
                    raise
            else:
                self._remember(key, _Series(series.name, series.count + 1, self._clock()))
                return
        name = f"{ref.name[:236]}.{uuid.uuid4().hex[:16]}"
        self._api.create(
            EVENTS,
            ref.namespace,
            event_manifest(
                ref, record, name=name, at=now, instance=self._instance, component=self._component
            ),
        )
        self._remember(key, _Series(name, 1, self._clock()))

    def forget(self, uid: str) -> None:
        """Drop the series of a deleted ProgressiveService."""
        with self._lock:
            for key in [k for k in self._series if k[0] == uid]:
                del self._series[key]

    def _remember(self, key: tuple[str, str, bool, str], series: _Series) -> None:
        with self._lock:
            self._series[key] = series
            self._series.move_to_end(key)
            while len(self._series) > self._limit:
                self._series.popitem(last=False)
