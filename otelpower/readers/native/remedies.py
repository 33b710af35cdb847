"""What each native failure status asks of the user (the log line's remedy)."""

from __future__ import annotations

from otelpower.core.model import DeviceStatus
from otelpower.readers.polling import AUTH_RETRY_S

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
