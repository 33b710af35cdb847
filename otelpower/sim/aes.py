"""AES "securePassthrough" over HTTP /app (older Tapo firmware)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .faults import Fault, PlugContext, plaintext
from .httpbase import HttpListener

SESSION_COOKIE = "TP_SESSIONID"
TIMEOUT_S = 86400
ERR_SESSION_TIMEOUT = 9999
ERR_LOGIN = -1501
ERR_UNKNOWN_METHOD = -1002
ERR_PARAMS = -1008


def login_fields(username: str, password: str) -> set[tuple[str, str]]:
    """(field, value) pairs that prove knowledge of the owner credentials (lv 1 and lv 2)."""
    user = base64.b64encode(hashlib.sha1(username.encode()).hexdigest().encode()).decode()
    pw1 = base64.b64encode(password.encode()).decode()
    pw2 = base64.b64encode(hashlib.sha1(password.encode()).hexdigest().encode()).decode()
    return {(user, "password:" + pw1), (user, "password2:" + pw2)}


@dataclass
class AesSession:
    """Symmetric key agreed during the handshake, plus the login token once logged in."""

    key: bytes
    iv: bytes
    token: str | None = None

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.iv))

    def encrypt(self, plain: bytes) -> str:
        padder = padding.PKCS7(128).padder()
        enc = self._cipher().encryptor()
        data = enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()
        return base64.b64encode(data).decode()

    def decrypt(self, text: str) -> bytes:
        dec = self._cipher().decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        plain = dec.update(base64.b64decode(text)) + dec.finalize()
        return unpadder.update(plain) + unpadder.finalize()


class AesServer:
    """The HTTP side of one AES plug."""

    def __init__(self, ctx: PlugContext) -> None:
        self._ctx = ctx
        self.sessions: dict[str, AesSession] = {}
        #: login_device params received (the account's password, in the clear or SHA-1)
        self.logins_received: list[dict[str, Any]] = []
        self._http = HttpListener(ctx, [("/app", self._app)])

    async def start(self, host: str, port: int) -> int:
        return await self._http.start(host, port)

    async def stop(self) -> None:
        await self._http.stop()

    def drop_sessions(self) -> None:
        self.sessions.clear()

    async def _app(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            method = body.get("method")
        except (ValueError, AttributeError):
            return web.json_response({"error_code": ERR_PARAMS})
        if method == "handshake":
            return self._handshake(body.get("params") or {})
        if method != "securePassthrough":
            return web.json_response({"error_code": ERR_UNKNOWN_METHOD})
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            return web.json_response({"error_code": ERR_SESSION_TIMEOUT})
        try:
            inner = json.loads(session.decrypt(body["params"]["request"]))
        except (KeyError, TypeError, ValueError):
            return web.json_response({"error_code": ERR_PARAMS})
        plain = plaintext(self._ctx, self._inner(session, inner, request.query.get("token")))
        if self._ctx.fault is Fault.WRONG_KEY:
            session = AesSession(secrets.token_bytes(16), secrets.token_bytes(16))
        return web.json_response({"error_code": 0, "result": {"response": session.encrypt(plain)}})

    def _handshake(self, params: dict[str, Any]) -> web.Response:
        try:
            pub = serialization.load_pem_public_key(str(params["key"]).encode())
        except (KeyError, ValueError):
            return web.json_response({"error_code": ERR_PARAMS})
        if not isinstance(pub, RSAPublicKey):
            return web.json_response({"error_code": ERR_PARAMS})
        session = AesSession(secrets.token_bytes(16), secrets.token_bytes(16))
        sid = secrets.token_hex(16).upper()
        self.sessions[sid] = session
        key = pub.encrypt(session.key + session.iv, rsa_padding.PKCS1v15())
        resp = web.json_response(
            {"error_code": 0, "result": {"key": base64.b64encode(key).decode()}}
        )
        resp.headers["Set-Cookie"] = f"{SESSION_COOKIE}={sid};TIMEOUT={TIMEOUT_S}"
        return resp

    def _inner(self, session: AesSession, inner: dict[str, Any], token: str | None) -> dict:
        if inner.get("method") == "login_device":
            self._ctx.logins += 1
            self.logins_received.append(dict(inner.get("params") or {}))
            if not self._login_ok(inner.get("params") or {}):
                return {"error_code": ERR_LOGIN}
            session.token = secrets.token_hex(16).upper()
            return {"error_code": 0, "result": {"token": session.token}}
        if session.token is None or token != session.token:
            return {"error_code": ERR_SESSION_TIMEOUT}
        return self._ctx.device.handle(inner)

    def _login_ok(self, params: dict[str, Any]) -> bool:
        ctx = self._ctx
        if not ctx.username and not ctx.password:
            return True  # an unclaimed device lets anyone in
        if "password2" in params:
            offered = (str(params.get("username")), "password2:" + str(params["password2"]))
        else:
            offered = (str(params.get("username")), "password:" + str(params.get("password")))
        return offered in login_fields(ctx.username, ctx.password)
