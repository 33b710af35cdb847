"""The per-device state machine every reader publishes through (pure logic)."""

from __future__ import annotations

import logging

from otelpower.core import plausible
from otelpower.core.logthrottle import LogThrottle
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import Publisher

OK, OFFLINE, ERROR = DeviceStatus.OK, DeviceStatus.OFFLINE, DeviceStatus.ERROR
LABELS = {"device": "kettle", "device_id": "AA"}


class Recorder:
    def __init__(self) -> None:
        self.polls: list[tuple] = []
        self.drops: list[tuple] = []

    def poll(self, *args: object) -> None:
        self.polls.append(args)

    def dropped(self, protocol: str, device_id: str, device: str, readings) -> None:
        self.drops.append((protocol, device_id, device, len(readings)))


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("otelpower")]


def publisher(recorder: Recorder | None = None, clock: list[float] | None = None) -> Publisher:
    pub = Publisher("native", SnapshotStore(), {OFFLINE: "plug it in"}, recorder)
    if clock is not None:
        pub.log_throttle = LogThrottle(burst=3, window_s=300, clock=lambda: clock[0])
    return pub


def test_first_state_lines_never_say_flapping(caplog) -> None:
    caplog.set_level(logging.INFO, logger="otelpower")
    pub = publisher()
    pub.publish("AA", LABELS, DeviceStatus.PENDING, who="kettle")  # a reader's placeholder
    pub.publish("AA", LABELS, OK, who="kettle", up_note="KLAP")
    pub.publish("BB", LABELS, OK, who="node 2")  # first seen already up (a Matter node)
    pub.publish("CC", LABELS, OFFLINE, who="node 3", detail="gone", quiet=True)  # explained
    pub.publish("CC", LABELS, OK, who="node 3")
    assert lines(caplog) == ["kettle: up (KLAP)", "node 2: up", "node 3: up"]


def test_only_changes_are_logged_with_the_remedy(caplog) -> None:
    caplog.set_level(logging.INFO, logger="otelpower")
    pub = publisher()
    for status in (OK, OK, OFFLINE, OFFLINE, OK):
        pub.publish("AA", LABELS, status, who="kettle", detail="refused")
    assert lines(caplog) == ["kettle: up", "kettle: offline: refused; plug it in", "kettle: up"]
    assert pub.store.get("AA").up and pub.status("AA") is OK


def test_flapping_is_noted_after_real_repeated_changes(caplog) -> None:
    caplog.set_level(logging.INFO, logger="otelpower")
    now = [0.0]
    pub = publisher(clock=now)
    for i in range(10):  # 10 changes: 3 logged, 7 held back by the rate limit
        pub.publish("AA", LABELS, OK if i % 2 == 0 else ERROR, who="kettle")
    assert len(lines(caplog)) == 3
    now[0] += 300
    pub.publish("AA", LABELS, ERROR, who="kettle")  # the current state, once the window allows
    assert lines(caplog)[-1] == "kettle [6 state changes not logged: flapping]: error"


def test_drops_are_logged_once_per_kind_and_always_counted(caplog) -> None:
    recorder = Recorder()
    pub = publisher(recorder)
    readings = (plausible.reading({"power_watts": -1}),)
    for _ in range(5):
        pub.publish("AA", LABELS, OK, who="kettle", readings=readings)
    drops = [line for line in lines(caplog) if "dropped" in line]
    assert drops == [
        "kettle (AA): power_watts value -1 dropped (negative); further ones are only counted"
        " in otelpower_values_dropped_total"
    ]
    assert recorder.drops == [("native", "AA", "kettle", 1)] * 5
    pub.polled("AA", "kettle", 0.1, OK)
    assert recorder.polls == [("native", "AA", "kettle", 0.1, OK)]


def test_remove_forgets_the_device() -> None:
    pub = publisher()
    pub.publish("AA", LABELS, OK, who="kettle")
    pub.remove("AA")
    assert pub.store.get("AA") is None and pub.status("AA") is DeviceStatus.PENDING
