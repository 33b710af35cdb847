"""TPAP over HTTP(S): the SPAKE2+ verifier side, the AES-128-CCM data channel and lock-out.

A plug on Tapo firmware 1.4.x with Third-Party Compatibility off: it answers the TPAP
discover probe, logs clients in with SPAKE2+ (P-256, SHA-256; the device holds w0 and L),
serves the SMART JSON API on ``/stok=<stok>/ds``, refuses the KLAP handshake (403) and locks
itself after ``lock_after`` failed logins in a row. Facts: ``../shared/docs/tpap.md``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import ssl
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from . import p256
from .faults import Fault, PlugContext, plaintext
from .httpbase import HttpListener

# RFC 9383 P-256 constants (compressed SEC1)
M = p256.decode(bytes.fromhex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"))
N = p256.decode(bytes.fromhex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"))

ERR_CREDENTIALS = -2203
ERR_LOCKED = -2101
ERR_SESSION = -40401
ERR_PARAMS = -1008
_SEQ = struct.Struct(">i")


@dataclass
class TpapOptions:
    """How the plug announces and guards TPAP."""

    tls: int = 0  # 0 plain HTTP, 1 HTTPS (self-signed), 2 cloud-verified (no client speaks it)
    pake: tuple[int, ...] = (2,)
    iterations: int = 3000
    lock_after: int = 5  # failed logins in a row before the lock-out
    lock_s: float = 600.0
    session_ttl_s: float = 86400.0  # older sessions answer 401


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hkdf(key: bytes, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(key)


def _lp(*items: bytes) -> bytes:
    return b"".join(len(i).to_bytes(8, "little") + i for i in items)


def verifier(password: str, salt: bytes, iterations: int) -> tuple[int, p256.Point]:
    """(w0, L) the device keeps for this password."""
    credential = hashlib.sha1(password.encode()).hexdigest().encode()
    out = hashlib.pbkdf2_hmac("sha256", credential, salt, iterations, 80)
    w0 = int.from_bytes(out[:40], "big") % p256.N
    w1 = int.from_bytes(out[40:], "big") % p256.N
    return w0, p256.mul(w1, p256.G)


@dataclass
class _Pending:
    """A pake_register waiting for its pake_share."""

    context: bytes
    y: int
    share: p256.Point
    w0: int
    ell: p256.Point


@dataclass
class TpapSession:
    """The data channel: AES-128-CCM key and base nonce from the SPAKE2+ shared key."""

    shared: bytes
    created: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        key = _hkdf(self.shared, b"tp-kdf-info-aes128-key", 16, b"tp-kdf-salt-aes128-key")
        self.nonce = _hkdf(self.shared, b"tp-kdf-info-aes128-iv", 12, b"tp-kdf-salt-aes128-iv")
        self.aead = AESCCM(key, tag_length=16)

    def _nonce(self, seq: int) -> bytes:
        return self.nonce[:8] + _SEQ.pack(seq)

    def open(self, body: bytes) -> tuple[int, bytes]:
        (seq,) = _SEQ.unpack(body[:4])
        return seq, self.aead.decrypt(self._nonce(seq), body[4:], None)

    def seal(self, seq: int, plain: bytes) -> bytes:
        return _SEQ.pack(seq) + self.aead.encrypt(self._nonce(seq), plain, None)


def self_signed_context(host: str) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed ECDSA certificate, as plugs carry."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tapo-sim")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        pem = Path(tmp) / "plug.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
        ctx.load_cert_chain(pem)
    return ctx


class TpapServer:
    """The HTTP(S) side of one plug in TPAP mode."""

    def __init__(self, ctx: PlugContext, options: TpapOptions | None = None) -> None:
        self._ctx = ctx
        self.options = options or TpapOptions()
        self.sessions: dict[str, TpapSession] = {}
        self.failed_in_a_row = 0
        self.locked_until = 0.0
        self._salt = secrets.token_bytes(16)
        self._verifier: tuple[str, int, p256.Point] | None = None
        self._pending: dict[str, _Pending] = {}
        self._port = 0
        self._http = HttpListener(
            ctx,
            [
                ("/", self._login),
                ("/stok={stok}/ds", self._data),
                ("/app/handshake1", self._refuse),
                ("/app", self._refuse),
            ],
        )

    async def start(self, host: str, port: int) -> int:
        tls = self_signed_context(host) if self.options.tls else None
        self._port = await self._http.start(host, port, ssl_context=tls)
        return self._port

    async def stop(self) -> None:
        await self._http.stop()

    def drop_sessions(self) -> None:
        self.sessions.clear()
        self._pending.clear()

    def announce(self) -> dict[str, Any]:
        """The ``tpap`` object of the discover answer and of UDP discovery replies."""
        tls = self.options.tls
        return {
            "tls": tls,
            "dac": 1 if tls == 2 else 0,
            "noc": 1 if tls == 2 else 0,
            "pake": list(self.options.pake),
            "port": self._port,
        }

    @property
    def tls_connections(self) -> int:
        return self._http.tls_connections

    @property
    def locked(self) -> bool:
        return time.monotonic() < self.locked_until

    # -- login -------------------------------------------------------------------------

    async def _refuse(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=403)

    async def _login(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            params = body["params"]
            sub = params["sub_method"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error_code": ERR_PARAMS})
        if self.locked:
            return web.json_response({"error_code": ERR_LOCKED})
        peer = request.remote or ""
        try:
            if sub == "discover":
                result = {
                    "sub_method": "discover",
                    "tpap_preferred": True,
                    "mac": self._ctx.device.mac.replace(":", "").upper(),
                    "tpap": self.announce(),
                }
                return web.json_response({"error_code": 0, "result": result})
            if sub == "pake_register":
                return web.json_response(self._register(peer, params))
            if sub == "pake_share":
                return web.json_response(self._share(peer, params))
        except (KeyError, TypeError, ValueError):
            return web.json_response({"error_code": ERR_PARAMS})
        return web.json_response({"error_code": ERR_PARAMS})

    def _keys(self) -> tuple[int, p256.Point]:
        password = self._ctx.password
        if self._verifier is None or self._verifier[0] != password:
            w0, ell = verifier(password, self._salt, self.options.iterations)
            self._verifier = (password, w0, ell)
        return self._verifier[1], self._verifier[2]

    def _register(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        user_random = base64.b64decode(params["user_random"], validate=True)
        dev_random = secrets.token_bytes(32)
        w0, ell = self._keys()
        y = secrets.randbelow(p256.N - 1) + 1
        share = p256.add(p256.mul(y, p256.G), p256.mul(w0, N))
        context = hashlib.sha256(b"PAKE V1" + user_random + dev_random).digest()
        self._pending[peer] = _Pending(context, y, share, w0, ell)
        result = {
            "cipher_suites": 1,
            "encryption": "aes_128_ccm",
            "iterations": self.options.iterations,
            "dev_random": _b64(dev_random),
            "dev_salt": _b64(self._salt),
            "dev_share": _b64(p256.encode(share)),
            "extra_crypt": {"type": "password_shadow", "params": {"passwd_id": 2}},
        }
        return {"error_code": 0, "result": result}

    def _share(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ctx.logins += 1
        pending = self._pending.pop(peer, None)
        if pending is None:
            return {"error_code": ERR_PARAMS}
        x_bytes = base64.b64decode(params["user_share"], validate=True)
        x_point = p256.decode(x_bytes)
        z = p256.mul(pending.y, p256.add(x_point, p256.neg(p256.mul(pending.w0, M))))
        v = p256.mul(pending.y, pending.ell)
        transcript = _lp(
            pending.context,
            b"",
            b"",
            p256.encode(M),
            p256.encode(N),
            p256.encode(x_point),
            p256.encode(pending.share),
            p256.encode(z),
            p256.encode(v),
            pending.w0.to_bytes(32, "big"),
        )
        main = hashlib.sha256(transcript).digest()
        confirm = _hkdf(main, b"ConfirmationKeys", 64)
        expected = hmac.new(confirm[:32], p256.encode(pending.share), hashlib.sha256).digest()
        offered = base64.b64decode(params["user_confirm"], validate=True)
        if not hmac.compare_digest(expected, offered):
            return self._failed_login()
        self.failed_in_a_row = 0
        stok = secrets.token_hex(16)
        self.sessions[stok] = TpapSession(_hkdf(main, b"SharedKey", 32))
        start_seq = secrets.randbelow(1 << 32) - (1 << 31)
        dev_confirm = hmac.new(confirm[32:], p256.encode(x_point), hashlib.sha256).digest()
        result = {"dev_confirm": _b64(dev_confirm), "stok": stok, "start_seq": start_seq}
        return {"error_code": 0, "result": result}

    def _failed_login(self) -> dict[str, Any]:
        self.failed_in_a_row += 1
        remaining = max(0, self.options.lock_after - self.failed_in_a_row)
        if remaining == 0:
            self.locked_until = time.monotonic() + self.options.lock_s
            self.failed_in_a_row = 0
            return {"error_code": ERR_LOCKED}
        return {
            "error_code": ERR_CREDENTIALS,
            "result": {"failedAttempts": self.failed_in_a_row, "remainAttempts": remaining},
        }

    # -- data channel ----------------------------------------------------------------

    async def _data(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.locked:
            return web.json_response({"error_code": ERR_LOCKED})
        session = self.sessions.get(request.match_info["stok"])
        if session is None:  # forgotten (reboot): the client sees TPAP_SESSION_INVALID
            return web.json_response({"error_code": ERR_SESSION})
        if time.monotonic() - session.created > self.options.session_ttl_s:
            return web.Response(status=401)
        try:
            seq, plain = session.open(body)
            payload = json.loads(plain)
        except (InvalidTag, ValueError, struct.error):
            return web.Response(status=400)
        reply = plaintext(self._ctx, self._ctx.device.handle(payload))
        if self._ctx.fault is Fault.WRONG_KEY:
            session = TpapSession(secrets.token_bytes(32))
        return web.Response(body=session.seal(seq, reply), content_type="application/octet-stream")
