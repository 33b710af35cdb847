"""KLAP (v1 and v2) over HTTP: /app/handshake1, /app/handshake2, /app/request?seq=N."""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .faults import Fault, PlugContext, plaintext
from .httpbase import HttpListener

SESSION_COOKIE = "TP_SESSIONID"
TIMEOUT_S = 86400
_SEQ = struct.Struct(">l")


def _sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def auth_hash(version: int, username: str, password: str) -> bytes:
    """The owner's KLAP authentication hash."""
    u, p = username.encode(), password.encode()
    if version == 1:
        return hashlib.md5(hashlib.md5(u).digest() + hashlib.md5(p).digest()).digest()
    return _sha256(hashlib.sha1(u).digest() + hashlib.sha1(p).digest())


def server_hashes(version: int, local: bytes, remote: bytes, auth: bytes) -> tuple[bytes, bytes]:
    """(handshake1 hash the device sends, handshake2 hash it expects back)."""
    if version == 1:
        return _sha256(local + auth), _sha256(remote + auth)
    return _sha256(local + remote + auth), _sha256(remote + local + auth)


@dataclass
class KlapSession:
    """Keys derived from both seeds and the owner hash."""

    local: bytes
    remote: bytes
    auth: bytes
    expected_h2: bytes
    established: bool = False

    def __post_init__(self) -> None:
        seeds = self.local + self.remote + self.auth
        self.key = _sha256(b"lsk" + seeds)[:16]
        self.iv = _sha256(b"iv" + seeds)[:12]
        self.sig = _sha256(b"ldk" + seeds)[:28]

    def _cipher(self, seq: int) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.iv + _SEQ.pack(seq)))

    def decrypt(self, seq: int, body: bytes) -> bytes:
        """Check the signature and decrypt one request body."""
        signature, ciphertext = body[:32], body[32:]
        if signature != _sha256(self.sig + _SEQ.pack(seq) + ciphertext):
            raise ValueError("bad KLAP signature")
        dec = self._cipher(seq).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        plain = dec.update(ciphertext) + dec.finalize()
        return unpadder.update(plain) + unpadder.finalize()

    def encrypt(self, seq: int, plain: bytes) -> bytes:
        """Encrypt a reply with the request's sequence number."""
        padder = padding.PKCS7(128).padder()
        enc = self._cipher(seq).encryptor()
        ciphertext = enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()
        return _sha256(self.sig + _SEQ.pack(seq) + ciphertext) + ciphertext


class KlapServer:
    """The HTTP side of one KLAP plug."""

    def __init__(self, ctx: PlugContext, version: int) -> None:
        self._ctx = ctx
        self.version = version
        self.sessions: dict[str, KlapSession] = {}
        #: handshake2 bodies received: derived from the client's password hash (an offline
        #: guess at it), sent only to a plug whose handshake1 proved it knows the account
        self.proofs_received = 0
        self._http = HttpListener(
            ctx,
            [
                ("/app/handshake1", self._handshake1),
                ("/app/handshake2", self._handshake2),
                ("/app/request", self._request),
            ],
        )

    async def start(self, host: str, port: int) -> int:
        return await self._http.start(host, port)

    async def stop(self) -> None:
        await self._http.stop()

    def drop_sessions(self) -> None:
        self.sessions.clear()

    async def _handshake1(self, request: web.Request) -> web.Response:
        local = await request.read()
        if len(local) != 16:
            return web.Response(status=400)
        self._ctx.logins += 1
        remote = secrets.token_bytes(16)
        auth = auth_hash(self.version, self._ctx.username, self._ctx.password)
        h1, h2 = server_hashes(self.version, local, remote, auth)
        sid = secrets.token_hex(16).upper()
        self.sessions[sid] = KlapSession(local, remote, auth, h2)
        # A real device sends both values in one header; the client reads both.
        headers = {"Set-Cookie": f"{SESSION_COOKIE}={sid};TIMEOUT={TIMEOUT_S}"}
        return web.Response(body=remote + h1, headers=headers)

    async def _handshake2(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.proofs_received += 1
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None or body != session.expected_h2:
            return web.Response(status=403)
        session.established = True
        return web.Response(status=200)

    async def _request(self, request: web.Request) -> web.Response:
        body = await request.read()
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None or not session.established:
            return web.Response(status=403)  # the client re-handshakes and retries
        try:
            seq = int(request.query["seq"])
            payload = json.loads(session.decrypt(seq, body))
        except (KeyError, ValueError):
            return web.Response(status=400)
        plain = plaintext(self._ctx, self._ctx.device.handle(payload))
        if self._ctx.fault is Fault.WRONG_KEY:
            session = KlapSession(secrets.token_bytes(16), session.remote, session.auth, b"")
        return web.Response(body=session.encrypt(seq, plain))
