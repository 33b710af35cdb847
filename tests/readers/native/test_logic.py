"""Pure logic of the native reader: failure classification, backoff, discovery replies."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kasa.exceptions import AuthenticationError, KasaException, UnsupportedDeviceError
from kasa.exceptions import TimeoutError as KasaTimeout

from otelpower.core.model import DeviceStatus
from otelpower.readers.native.discovery import parse_reply
from otelpower.readers.native.errors import LOCKED_DETAIL, TapoError, classify, tapo_kind
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


def one_plug_reader() -> tuple[NativeReader, Any]:
    """A reader of one plug polled every 2 s, backing off to at most 10 s (no I/O)."""
    data = {
        "house": "h",
        "devices": [{"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s", "device": "d"}],
    }
    reader = NativeReader(make_config(data, poll={"interval": 2, "backoff_max": 10}))
    return reader, reader.devices[0]


def test_backoff_is_exponential_and_capped() -> None:
    reader, plug = one_plug_reader()
    delays = []
    for failures in range(6):
        plug.failures = failures
        delays.append(reader.delay(plug))
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
    assert parse_reply(tpap).supported is True  # read through the tapo client
    for variant, supported in (
        ({"tls": 0, "pake": [2], "port": 80}, True),
        ({"tls": 1, "pake": [2], "port": 443}, True),
        ({"tls": 2, "pake": [2], "port": 4433}, False),  # cloud certificates
        ({"tls": 0, "pake": [0, 2]}, False),  # default passcode
    ):
        tpap["discovery_response"]["result"]["tpap"] = variant
        assert parse_reply(tpap).supported is supported, variant
    legacy = {
        "discovery_response": {
            "system": {"get_sysinfo": {"mac": "48:22:54:00:00:0B", "model": "KP115(EU)"}}
        },
        "meta": {"ip": "10.0.0.7"},
    }
    assert parse_reply(legacy).transport == "XOR"
    assert parse_reply({"discovery_response": {"system": {}}, "meta": {}}) is None


def test_a_rejected_login_waits_for_the_retry_interval() -> None:
    reader, plug = one_plug_reader()
    plug.failures = 1
    assert reader.delay(plug) == 2
    plug.login_after = time.monotonic() + 1800
    assert 1790 < reader.delay(plug) <= 1800


# The client's error texts, as the unmodified tapo 0.12.0 raised them against the emulator
# (tests/readers/native/test_tapo_link.py provokes each one live).
TAPO_TEXTS = {
    "credentials": 'Tapo(Unauthorized { kind: "TPAP_CREDENTIALS", description: "Please verify'
    ' that your password is correct" })',
    "locked": 'Tapo(Unauthorized { kind: "TPAP_AUTH_ATTEMPTS_LIMIT", description: "The device'
    ' has locked itself after too many failed logins" })',
    "session": 'Tapo(Unauthorized { kind: "TPAP_SESSION_INVALID", description: "Session has'
    ' expired. Re-authentication is required." })',
    "unsupported": 'UnsupportedProtocol { protocol: "TPAP", description: "The device uses a'
    ' variant of the TPAP protocol that is not supported yet (tls: 2). On some devices" }',
    "offline": 'Http(reqwest::Error { kind: Request, url: "http://127.0.0.1:1/", source:'
    ' hyper_util::client::legacy::Error(Connect, ConnectError("tcp connect error",'
    ' 127.0.0.1:1, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })) })',
    "timeout": 'Http(reqwest::Error { kind: Request, url: "http://127.1.2.3:4000/", source:'
    " TimedOut })",
    "reply": 'Serde(Error("missing field `local_time`", line: 1, column: 215))',
}


@pytest.mark.parametrize(("kind", "text"), sorted(TAPO_TEXTS.items()))
def test_tapo_errors_are_classified_by_kind(kind: str, text: str) -> None:
    assert tapo_kind(text) == kind
    status, detail = classify(TapoError(text), 5)
    expected = {
        "credentials": DeviceStatus.AUTH_FAILED,
        "locked": DeviceStatus.AUTH_FAILED,
        "session": DeviceStatus.ERROR,
        "unsupported": DeviceStatus.UNSUPPORTED,
        "offline": DeviceStatus.OFFLINE,
        "timeout": DeviceStatus.TIMEOUT,
        "reply": DeviceStatus.ERROR,
    }[kind]
    assert status is expected and detail and len(detail) <= 200
    if kind == "locked":
        assert detail == LOCKED_DETAIL
    if kind == "unsupported":
        assert detail == "TPAP variant not supported (tls: 2)"


def test_tapo_error_text_never_carries_the_session_token() -> None:
    err = TapoError('Http(reqwest::Error { url: "http://10.0.0.2/stok=0123abcd/ds" })')
    assert "0123abcd" not in str(err) and "stok=..." in str(err)


def test_error_details_are_one_clean_line() -> None:
    from otelpower.readers.native.errors import MAX_DETAIL, classify

    long = RuntimeError("word " * 100 + "<ssl.SSLContext object at 0x7f2cad64e550> end")
    _, detail = classify(long, 10)
    assert len(detail) <= MAX_DETAIL + 2 and detail.endswith(" …") and "word …" in detail
    _, detail = classify(RuntimeError("bad ssl:<ssl.SSLContext object at 0x7f2c> reply"), 10)
    assert detail == "bad ssl: reply"


def test_otelpowers_own_limits_are_not_blamed_on_the_plug() -> None:
    import errno as errno_

    from kasa.exceptions import KasaException

    from otelpower.readers.native.errors import classify

    inner = OSError(errno_.EMFILE, "Too many open files")
    wrapped = KasaException("Unable to connect to the device: 10.0.0.5:9999")
    wrapped.__cause__ = inner
    status, detail = classify(wrapped, 4)
    assert status.value == "error" and "too many open files" in detail and "ulimit" in detail
    refused = KasaException("Unable to connect")
    refused.__cause__ = ConnectionRefusedError(errno_.ECONNREFUSED, "refused")
    assert classify(refused, 4)[0].value == "offline"
