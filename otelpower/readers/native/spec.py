"""The native reader as the rest of otelpower sees it (no python-kasa import here)."""

from __future__ import annotations

from otelpower.config.schema import Config
from otelpower.core import quantities as q
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader, ReaderSpec
from otelpower.readers.native import commands, settings

REMEDIES: dict[DeviceStatus, str] = {
    DeviceStatus.AUTH_FAILED: (
        "check KASA_USERNAME/KASA_PASSWORD: they must be the TP-Link account that owns the plug"
        " (a plug bound to another account needs that account)"
    ),
    DeviceStatus.UNSUPPORTED: (
        "this firmware speaks a transport python-kasa cannot (e.g. TPAP);"
        " read the plug over Matter instead (--protocol matter)"
    ),
    DeviceStatus.OFFLINE: "check that the plug is powered and on the network, and its host",
    DeviceStatus.TIMEOUT: "the plug did not answer in time; check Wi-Fi signal and poll.timeout",
    DeviceStatus.ERROR: "the plug answered something unexpected; see the detail",
}


def _create(config: Config, store: SnapshotStore, recorder: PollRecorder) -> Reader:
    from otelpower.readers.native.reader import NativeReader

    return NativeReader(config, store, recorder=recorder)


def _summary(config: Config) -> str:
    hosts = sum(1 for d in config.devices if (t := settings.target(d)) and t.host)
    return f"{hosts} with a native host, {len(config.devices) - hosts} by discovery"


SPEC = ReaderSpec(
    name="native",
    vendor="tplink",
    protocol="native",
    description="TP-Link Kasa/Tapo plugs on the LAN with python-kasa (KLAP, AES, XOR)",
    quantities=(
        q.POWER,
        q.VOLTAGE,
        q.CURRENT,
        q.ENERGY_TODAY,
        q.ENERGY_MONTH,
        q.ENERGY_TOTAL,
        q.RELAY_ON,
        q.RSSI,
    ),
    create=_create,
    sections={
        "discovery": settings.parse_discovery,
        "credentials": settings.parse_credentials,
    },
    device_sections={"native": settings.parse_target},
    remedies=REMEDIES,
    commands=(commands.DISCOVER, commands.READ),
    summary=_summary,
    requires=("kasa",),
    extra="native",
    quiet_loggers=("kasa",),  # we report per-device state ourselves
)
