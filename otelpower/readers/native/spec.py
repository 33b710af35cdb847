"""The native reader as the rest of otelpower sees it (no python-kasa import here)."""

from __future__ import annotations

from otelpower.config.schema import Config
from otelpower.core import quantities as q
from otelpower.core.model import SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader, ReaderSpec, RunOption
from otelpower.readers.native import commands, settings
from otelpower.readers.native.remedies import REMEDIES


def _create(config: Config, store: SnapshotStore, recorder: PollRecorder) -> Reader:
    from otelpower.readers.native.reader import NativeReader

    return NativeReader(config, store, recorder=recorder, spec=SPEC)


def _precondition(config: Config) -> str | None:
    if not any(d.reads(SPEC) for d in config.devices) and not settings.adopts(config):
        return (
            "has nothing to read: no device is read natively and discovery does not adopt"
            " plugs (set discovery.enabled and discovery.adopt, or list devices)"
        )
    return None


TARGET = RunOption(
    ("--target",),
    "address to probe for plugs: broadcast or unicast (repeatable; default: the config's"
    " discovery.targets, else 255.255.255.255)",
    settings.with_targets,
    metavar="ADDR",
    repeatable=True,
)


def _summary(config: Config) -> str:
    native = [d for d in config.devices if d.reads(SPEC)]
    hosts = sum(1 for d in native if (t := settings.target(d)) and t.host)
    text = f"{hosts} with a native host, {len(native) - hosts} by discovery"
    if settings.adopts(config):
        text += ", and every other plug discovery finds"
    skipped = len(config.devices) - len(native)
    return f"{text}, {skipped} not read natively" if skipped else text


SPEC = ReaderSpec(
    name="native",
    vendor="tplink",
    protocol="native",
    description=("TP-Link Kasa/Tapo plugs on the LAN: python-kasa (XOR, KLAP, AES), tapo (TPAP)"),
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
    run_options=(TARGET,),
    precondition=_precondition,
    summary=_summary,
    requires=("kasa", "tapo"),
    extra="native",
    quiet_loggers=("kasa", "tapo"),  # we report per-device state ourselves
    # python-kasa's transports log KLAP handshake seeds and hashes at DEBUG: enough to guess
    # the account's password offline
    secret_loggers=("kasa.transports",),
    matter_vendor_ids=(0x1141,),  # TP-Link's CSA VendorID (Tapo P110M, KP125M)
)
