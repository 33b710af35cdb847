"""The Shelly reader as the rest of otelpower sees it (no aioshelly import here)."""

from __future__ import annotations

from otelpower.config.schema import Config
from otelpower.core import quantities as q
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader, ReaderSpec
from otelpower.readers.polling import AUTH_RETRY_S
from otelpower.readers.shelly import settings

REMEDIES: dict[DeviceStatus, str] = {
    DeviceStatus.AUTH_FAILED: (
        f"set {settings.PASSWORD_ENV} (or shelly.password_file) to the device's admin password;"
        " devices refuse logins for a while after a few wrong ones, so otelpower tries again"
        f" only every {AUTH_RETRY_S / 60:g} minutes, or when restarted"
    ),
    DeviceStatus.OFFLINE: "check that the device is powered and on the network, and its host",
    DeviceStatus.TIMEOUT: "the device did not answer in time; check Wi-Fi and poll.timeout",
    DeviceStatus.ERROR: "the device answered something unexpected; see the detail",
}


def _create(config: Config, store: SnapshotStore, recorder: PollRecorder) -> Reader:
    from otelpower.readers.shelly.reader import ShellyReader

    return ShellyReader(config, SPEC, store=store, recorder=recorder)


def _precondition(config: Config) -> str | None:
    if any(settings.target(d) and d.reads(SPEC) for d in config.devices):
        return None
    return "has nothing to read: no device has a shelly: {host: ...} section"


def _summary(config: Config) -> str:
    return f"{sum(1 for d in config.devices if settings.target(d) and d.reads(SPEC))} Shelly"


SPEC = ReaderSpec(
    name="shelly",
    vendor="shelly",
    protocol="native",
    description="Shelly Gen2+ plugs, relays and meters on the LAN (aioshelly, RPC over WebSocket)",
    quantities=(
        q.POWER,
        q.VOLTAGE,
        q.CURRENT,
        q.FREQUENCY,
        q.POWER_FACTOR,
        q.ENERGY_TOTAL,
        q.ENERGY_EXPORTED,
        q.RELAY_ON,
        q.RSSI,
        q.TEMPERATURE,
    ),
    create=_create,
    sections={"shelly": settings.parse_auth},
    device_sections={"shelly": settings.parse_device},
    remedies=REMEDIES,
    precondition=_precondition,
    summary=_summary,
    requires=("aioshelly",),
    extra="shelly",
    quiet_loggers=("aioshelly",),  # we report per-device state ourselves
    # aioshelly logs every frame at DEBUG, the digest response among them: with the realm
    # known, enough to guess the admin password offline
    secret_loggers=("aioshelly.rpc_device.wsrpc",),
)
