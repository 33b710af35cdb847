"""The native reader as the rest of otelpower sees it (no python-kasa import here)."""

from __future__ import annotations

from otelpower.config.schema import Config
from otelpower.core import quantities as q
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader, ReaderSpec, RunOption
from otelpower.readers.native import commands, settings

AUTH_RETRY_S = 1800.0  # a rejected login is retried once per 30 minutes, never in a loop

REMEDIES: dict[DeviceStatus, str] = {
    DeviceStatus.AUTH_FAILED: (
        "check KASA_USERNAME/KASA_PASSWORD: they must be the TP-Link account that owns the plug"
        " (a plug bound to another account needs that account); plugs lock themselves after"
        f" a few failed logins, so otelpower tries this one again only every"
        f" {AUTH_RETRY_S / 60:g} minutes, or when restarted"
    ),
    DeviceStatus.UNSUPPORTED: (
        "the plug speaks a login otelpower will not use (the detail says why and what to set)"
        " or no client library supports yet (e.g. TPAP with cloud certificates: turn on"
        " Third-Party Compatibility in the Tapo app, Me > Third-Party Services, or read the"
        " plug over Matter, --protocol matter)"
    ),
    DeviceStatus.OFFLINE: "check that the plug is powered and on the network, and its host",
    DeviceStatus.TIMEOUT: "the plug did not answer in time; check Wi-Fi signal and poll.timeout",
    DeviceStatus.ERROR: "the plug answered something unexpected; see the detail",
}


def _create(config: Config, store: SnapshotStore, recorder: PollRecorder) -> Reader:
    from otelpower.readers.native.reader import NativeReader

    return NativeReader(config, store, recorder=recorder)


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
