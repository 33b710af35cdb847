"""The Matter reader as the rest of otelpower sees it (no Matter client import here)."""

from __future__ import annotations

from otelpower.config.schema import Config
from otelpower.core import quantities as q
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader, ReaderSpec, RunOption
from otelpower.readers.matter import settings

REMEDIES: dict[DeviceStatus, str] = {
    DeviceStatus.OFFLINE: (
        "the Matter server cannot reach the node; check that the plug is powered and on the network"
    ),
    DeviceStatus.TIMEOUT: "the node did not answer in time; check its Wi-Fi/Thread signal",
    DeviceStatus.ERROR: "the server could not read the node; see the detail",
}


def _create(config: Config, store: SnapshotStore, recorder: PollRecorder) -> Reader:
    from otelpower.readers.matter.reader import MatterReader

    return MatterReader(config, store, recorder=recorder, spec=SPEC)


def _precondition(config: Config) -> str | None:
    if settings.server_url(config):
        return None
    return (
        "needs a Matter server: set matter.url in the config or pass"
        " --matter-server ws://HOST:5580/ws"
    )


def _summary(config: Config) -> str:
    nodes = sum(1 for d in config.devices if settings.node_id(d) is not None)
    return f"{nodes} with a Matter node id"


SPEC = ReaderSpec(
    name="matter",
    vendor="tplink",  # the default maker: a device's own ``vendor:`` names its series
    protocol="matter",
    description="plugs through a Matter server's WebSocket API (python-matter-server client)",
    quantities=(
        q.POWER,
        q.VOLTAGE,
        q.CURRENT,
        q.ENERGY_TOTAL,
        q.ENERGY_EXPORTED,
        q.APPARENT_POWER,
        q.REACTIVE_POWER,
        q.POWER_FACTOR,
        q.FREQUENCY,
        q.RELAY_ON,
    ),
    create=_create,
    sections={"matter": settings.parse_server},
    device_sections={"matter": settings.parse_node},
    remedies=REMEDIES,
    run_options=(
        RunOption(
            ("--matter-server",),
            "Matter server ws://HOST:PORT/ws",
            settings.with_server_url,
            metavar="URL",
        ),
    ),
    precondition=_precondition,
    summary=_summary,
    requires=("matter_server",),
    extra="matter",
    any_vendor=True,  # any maker's Matter plug: named <its vendor>_matter_*
)
