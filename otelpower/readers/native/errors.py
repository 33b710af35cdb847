"""Any native poll failure as a per-device status with a one-line detail."""

from __future__ import annotations

from kasa.exceptions import AuthenticationError, KasaException, UnsupportedDeviceError

from otelpower.core.model import DeviceStatus


class NotFound(Exception):
    """The plug has no known address yet (no host configured, not seen by discovery)."""


class WrongDevice(Exception):
    """The address answered, but with another MAC than the config's device_id."""


def classify(exc: BaseException, timeout: float) -> tuple[DeviceStatus, str]:
    """Map any poll failure to a status and a one-line detail (never with credentials)."""
    if isinstance(exc, AuthenticationError):
        return DeviceStatus.AUTH_FAILED, "authentication failed"
    if isinstance(exc, UnsupportedDeviceError):
        return DeviceStatus.UNSUPPORTED, _short(exc)
    if isinstance(exc, NotFound):
        return DeviceStatus.OFFLINE, str(exc)
    if isinstance(exc, WrongDevice):
        return DeviceStatus.ERROR, f"wrong device: {exc}"
    if isinstance(exc, TimeoutError):  # our deadline, or python-kasa's per-request timeout
        return DeviceStatus.TIMEOUT, f"no answer within {timeout:g}s"
    if isinstance(exc, OSError | KasaException) and _looks_offline(exc):
        return DeviceStatus.OFFLINE, _short(exc)
    return DeviceStatus.ERROR, _short(exc)


def _looks_offline(exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, OSError | TimeoutError):
            return True
        chain = chain.__cause__ or chain.__context__
    text = str(exc).lower()
    return any(s in text for s in ("connect", "refused", "unreachable", "timed out", "timeout"))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
