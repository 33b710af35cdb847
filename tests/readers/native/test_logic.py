"""Pure logic of the native reader: failure classification, backoff, discovery replies."""

from __future__ import annotations

import pytest
from kasa.exceptions import AuthenticationError, KasaException, UnsupportedDeviceError
from kasa.exceptions import TimeoutError as KasaTimeout

from otelpower.core.model import DeviceStatus
from otelpower.readers.native.discovery import parse_reply
from otelpower.readers.native.errors import classify
from otelpower.readers.native.reader import NativeReader
from tests.conftest import make_config


def chained(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (AuthenticationError("bad"), DeviceStatus.AUTH_FAILED),
        (UnsupportedDeviceError("TPAP"), DeviceStatus.UNSUPPORTED),
        (TimeoutError(), DeviceStatus.TIMEOUT),
        (ConnectionRefusedError(111, "refused"), DeviceStatus.OFFLINE),
        (KasaTimeout("Timeout"), DeviceStatus.TIMEOUT),
        (chained(KasaException("x"), OSError("unreachable")), DeviceStatus.OFFLINE),
        (KasaException("Unable to connect to the device: 1.2.3.4"), DeviceStatus.OFFLINE),
        (ValueError("garbage json"), DeviceStatus.ERROR),
    ],
)
def test_classify(exc: Exception, status: DeviceStatus) -> None:
    got, detail = classify(exc, 5)
    assert got is status
    assert detail and len(detail) <= 200


def test_backoff_is_exponential_and_capped() -> None:
    data = {
        "house": "h",
        "devices": [{"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s", "device": "d"}],
    }
    reader = NativeReader(make_config(data, poll={"interval": 2, "backoff_max": 10}))
    plug = reader._plugs[0]
    delays = []
    for failures in range(6):
        plug.failures = failures
        delays.append(reader._delay(plug))
    assert delays == [2, 2, 4, 8, 10, 10]


def test_parse_discovery_replies() -> None:
    new = {
        "discovery_response": {
            "result": {
                "mac": "48-22-54-00-00-0A",
                "device_model": "P110(EU)",
                "mgt_encrypt_schm": {"encrypt_type": "KLAP"},
            }
        },
        "meta": {"ip": "10.0.0.5"},
    }
    plug = parse_reply(new)
    assert plug and (plug.mac, plug.ip, plug.transport, plug.supported) == (
        "48:22:54:00:00:0a",
        "10.0.0.5",
        "KLAP",
        True,
    )
    tpap = {
        "discovery_response": {
            "result": {"mac": "482254000001", "mgt_encrypt_schm": {"encrypt_type": "TPAP"}}
        },
        "meta": {"ip": "10.0.0.6"},
    }
    assert parse_reply(tpap).supported is False
    legacy = {
        "discovery_response": {
            "system": {"get_sysinfo": {"mac": "48:22:54:00:00:0B", "model": "KP115(EU)"}}
        },
        "meta": {"ip": "10.0.0.7"},
    }
    assert parse_reply(legacy).transport == "XOR"
    assert parse_reply({"discovery_response": {"system": {}}, "meta": {}}) is None
