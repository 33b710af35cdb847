"""The per-device state machine every reader publishes through.

A reader says what it saw of a device (a status, readings, a detail); the publisher puts the
snapshot, follows the device's status transitions, writes the rate-limited log line with the
status's remedy, and feeds the self-metrics (poll duration, errors by kind, last success,
dropped values). Readers keep only their I/O and identity logic (the Home Assistant
coordinator's split: the vendor writes the fetch, the base owns transitions and logging).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from otelpower.core.counters import CounterGuard
from otelpower.core.logthrottle import LogThrottle
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore


class PollRecorder(Protocol):
    """Where poll outcomes are counted (otelpower.export.selfmetrics implements it)."""

    def poll(
        self, protocol: str, device_id: str, device: str, seconds: float, status: DeviceStatus
    ) -> None: ...

    def dropped(
        self, protocol: str, device_id: str, device: str, readings: Iterable[Reading]
    ) -> None: ...


class NoRecorder:
    """Counts nothing (one-shot commands, tests of a reader alone)."""

    def poll(self, *_: object) -> None:
        pass

    def dropped(self, *_: object) -> None:
        pass


#: label values a plug sends (model, firmware, alias) are cut here: a plug answering a 100 kB
#: model string must not make a 100 kB label in every series and sample
MAX_LABEL = 128


def _bounded(values: Mapping[str, str]) -> Mapping[str, str]:
    """Label values from a plug: at most MAX_LABEL characters, encodable as UTF-8 (a lone
    surrogate from a plug's JSON would fail every rendering and export)."""
    if all(len(v) <= MAX_LABEL and v.isascii() for v in values.values()):
        return values
    return {k: v[:MAX_LABEL].encode("utf-8", "replace").decode("utf-8") for k, v in values.items()}


@dataclass(slots=True)
class _Track:
    status: DeviceStatus = DeviceStatus.PENDING
    logged: DeviceStatus = DeviceStatus.PENDING  # the state the log last showed
    held: int = 0  # state changes since that line (the rate limit held them back)


class Publisher:
    """One reader's devices: snapshots, transitions, log lines and self-metrics."""

    def __init__(
        self,
        protocol: str,
        store: SnapshotStore,
        remedies: Mapping[DeviceStatus, str],
        recorder: PollRecorder | None = None,
    ) -> None:
        self.protocol = protocol
        self.store = store
        self.remedies = remedies
        self.recorder: PollRecorder = recorder or NoRecorder()
        self.log_throttle = LogThrottle()
        self.counters = CounterGuard()  # energy counters never go down except at a real reset
        # the logger the reader's own module had (otelpower.readers.<protocol>): users filter on it
        self.log = logging.getLogger(f"otelpower.readers.{protocol}")
        self._tracks: dict[str, _Track] = {}
        self._logged_drops: set[tuple[str, str | None, str, str]] = set()

    def status(self, device_id: str) -> DeviceStatus:
        track = self._tracks.get(device_id)
        return DeviceStatus.PENDING if track is None else track.status

    def publish(
        self,
        device_id: str,
        labels: Mapping[str, str],
        status: DeviceStatus,
        *,
        who: str,
        info: Mapping[str, str] | None = None,
        readings: tuple[Reading, ...] = (),
        detail: str = "",
        up_note: str = "",
        quiet: bool = False,
        vendor: str = "",
    ) -> DeviceSnapshot:
        """Replace the device's snapshot and log the transition, if any.

        ``who`` names the device in the log line; ``quiet`` is for a state the reader has
        already explained in a line of its own (e.g. its server went away): it is taken as
        logged, so the next real change is logged without a "flapping" note. ``vendor``: the
        device's maker, from a reader of any maker's devices (names its metrics).
        """
        readings = self.counters.apply(device_id, readings)
        labels, info = _bounded(labels), _bounded(info or {})
        snap = DeviceSnapshot(device_id, labels, status, info, readings, detail, vendor=vendor)
        self.store.put(snap)
        self._dropped(device_id, labels.get("device", ""), readings)
        track = self._tracks.setdefault(device_id, _Track())
        if status is not track.status:
            track.status = status
            track.held += 1
        if quiet:
            track.logged, track.held = status, 0
            return snap
        if status is track.logged or not self.log_throttle.allow(device_id):
            return snap
        track.logged, held, track.held = status, track.held - 1, 0
        name = who + (f" [{held} state changes not logged: flapping]" if held > 0 else "")
        if status is DeviceStatus.OK:
            self.log.info("%s: up%s", name, f" ({up_note})" if up_note else "")
        elif status is not DeviceStatus.PENDING:
            remedy = self.remedies.get(status)
            text = f"{name}: {status}" + (f": {detail}" if detail else "")
            self.log.warning("%s", text + (f"; {remedy}" if remedy else ""))
        return snap

    def polled(self, device_id: str, device: str, seconds: float, status: DeviceStatus) -> None:
        """One poll of the device ended (successfully or not) after ``seconds``."""
        self.recorder.poll(self.protocol, device_id, device, seconds, status)

    def remove(self, device_id: str) -> None:
        self._tracks.pop(device_id, None)
        self.counters.forget(device_id)
        self.store.remove(device_id)

    def _dropped(self, device_id: str, device: str, readings: tuple[Reading, ...]) -> None:
        """Count the values a poll dropped; log each kind once per device and quantity."""
        if not any(r.dropped for r in readings):
            return
        for reading in readings:
            for drop in reading.dropped:
                seen = (device_id, reading.outlet, drop.key, drop.reason)
                if seen in self._logged_drops:
                    continue
                self._logged_drops.add(seen)
                outlet = f" outlet {reading.outlet}" if reading.outlet else ""
                self.log.warning(
                    "%s (%s)%s: %s value %s dropped (%s); further ones are only counted"
                    " in otelpower_values_dropped_total",
                    device,
                    device_id,
                    outlet,
                    drop.key,
                    drop.shown,
                    drop.reason,
                )
        self.recorder.dropped(self.protocol, device_id, device, readings)
