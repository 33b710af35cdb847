"""Protocol-neutral snapshots: what a reader last saw of each device.

Readers (pollers) replace a device's snapshot whole; metric callbacks only read them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class DeviceStatus(StrEnum):
    """Why a device is (not) up; exported as a label and logged on every change."""

    PENDING = "pending"  # not polled yet
    OK = "ok"
    OFFLINE = "offline"  # refused, unreachable, not found by discovery
    TIMEOUT = "timeout"  # no answer within the per-device timeout
    AUTH_FAILED = "auth_failed"  # wrong credentials or bound to another account
    UNSUPPORTED = "unsupported"  # e.g. a transport the client library cannot speak
    ERROR = "error"  # the device answered nonsense


@dataclass(frozen=True, slots=True)
class Dropped:
    """A value a device sent that is not exported (see otelpower.core.plausible)."""

    key: str
    reason: str
    shown: str  # repr, cut short: for the log line


@dataclass(frozen=True, slots=True)
class Reading:
    """Measured values of one channel: the plug itself, or one outlet of a strip.

    Only quantities the device measures are present; there is never a 0 for "unknown".
    """

    values: Mapping[str, float]
    outlet: str | None = None
    dropped: tuple[Dropped, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    device_id: str
    labels: Mapping[str, str]
    status: DeviceStatus = DeviceStatus.PENDING
    info: Mapping[str, str] = field(default_factory=dict)
    readings: tuple[Reading, ...] = ()
    detail: str = ""
    updated_at: float = field(default_factory=time.time)
    vendor: str = ""  # the device's maker, when its reader reads any maker's (Matter)

    @property
    def up(self) -> bool:
        return self.status is DeviceStatus.OK


class SnapshotStore:
    """Latest snapshot per device. Written by one poller, read by metric callbacks.

    Listeners hear of every change, ``urgent=True`` when a device's series appear or vanish
    (it went up or down, was added or removed); they must be quick and never block.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, DeviceSnapshot] = {}
        self._listeners: list[Callable[[bool], None]] = []

    def listen(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def _changed(self, urgent: bool) -> None:
        for listener in self._listeners:
            listener(urgent)

    def put(self, snapshot: DeviceSnapshot) -> None:
        with self._lock:
            previous = self._snapshots.get(snapshot.device_id)
            self._snapshots[snapshot.device_id] = snapshot
        self._changed(previous is None or previous.up != snapshot.up)

    def get(self, device_id: str) -> DeviceSnapshot | None:
        return self._snapshots.get(device_id)

    def remove(self, device_id: str) -> None:
        with self._lock:
            removed = self._snapshots.pop(device_id, None)
        if removed is not None:
            self._changed(True)

    def all(self) -> list[DeviceSnapshot]:
        with self._lock:
            return list(self._snapshots.values())
