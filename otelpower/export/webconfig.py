"""TLS and basic auth for the pull endpoint, from a web config file in the Prometheus
exporter-toolkit format (the ``--web.config.file`` of node_exporter), so one file serves both:

    tls_server_config:
      cert_file: server.crt          # relative paths: from the web config file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

The keys of the toolkit otelpower does not implement are refused by name rather than ignored.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from otelpower.config.yamlsource import YamlDoc, load_yaml

_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file"}
_VERSION_KEYS = {"min_version", "max_version"}
_UNSUPPORTED = {
    "cert",
    "key",
    "client_ca",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True)
class Tls:
    cert_file: Path
    key_file: Path
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    client_ca_file: Path | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        if self.max_version is not None:
            ctx.maximum_version = self.max_version
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            ctx.load_verify_locations(cafile=self.client_ca_file)
        ctx.verify_mode = self.client_auth
        return ctx


@dataclass
class Users:
    """``basic_auth_users``; a checked password is remembered (bcrypt is slow on purpose)."""

    hashes: dict[str, bytes]
    _ok: set[bytes] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, user: str, password: str) -> bool:
        stored = self.hashes.get(user)
        if stored is None:
            return False
        key = hashlib.sha256(b"\0".join((user.encode(), password.encode(), stored))).digest()
        with self._lock:
            if key in self._ok:
                return True
        try:
            if not bcrypt.checkpw(password.encode(), stored):
                return False
        except ValueError:  # e.g. a password beyond bcrypt's 72 bytes
            return False
        with self._lock:
            self._ok.add(key)
        return True


@dataclass(frozen=True)
class WebConfig:
    source: str
    tls: Tls | None = None
    users: Users | None = None


def load(path: Path | str) -> WebConfig:
    """Read and check ``path``; ConfigError names every problem with its key and line."""
    doc = load_yaml(Path(path), {})
    here = Path(path).resolve().parent
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        doc.problem((), "expected a mapping (tls_server_config, basic_auth_users)")
        doc.raise_if_problems()
    for key in data:
        if key not in ("tls_server_config", "basic_auth_users"):
            doc.problem((key,), "not supported (tls_server_config and basic_auth_users are)")
    tls = _tls(doc, data.get("tls_server_config"), here)
    users = _users(doc, data.get("basic_auth_users"))
    doc.raise_if_problems()
    return WebConfig(doc.source, tls, users)


def _file(doc: YamlDoc, m: dict[str, Any], key: str, here: Path) -> Path | None:
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        doc.problem(("tls_server_config", key), "must be a file path")
        return None
    path = (here / value) if not Path(value).is_absolute() else Path(value)
    if not path.is_file():
        doc.problem(("tls_server_config", key), f"{path}: no such file")
        return None
    return path


def _tls(doc: YamlDoc, raw: Any, here: Path) -> Tls | None:
    if raw is None:
        return None
    where = ("tls_server_config",)
    if not isinstance(raw, dict):
        doc.problem(where, "must be a mapping")
        return None
    for key in raw:
        if key in _UNSUPPORTED:
            doc.problem((*where, key), "not supported by otelpower (use the *_file keys)")
        elif key not in _TLS_KEYS | _VERSION_KEYS:
            doc.problem((*where, key), "unknown key")
    cert, key_file = _file(doc, raw, "cert_file", here), _file(doc, raw, "key_file", here)
    for name in ("cert_file", "key_file"):
        if name not in raw:
            doc.problem((*where, name), "is required for TLS")
    auth_name = raw.get("client_auth_type", "NoClientCert")
    auth = _CLIENT_AUTH.get(auth_name) if isinstance(auth_name, str) else None
    if auth is None:
        doc.problem((*where, "client_auth_type"), f"expected one of {', '.join(_CLIENT_AUTH)}")
    ca = _file(doc, raw, "client_ca_file", here)
    if auth is not None and auth != ssl.CERT_NONE and ca is None and "client_ca_file" not in raw:
        doc.problem((*where, "client_ca_file"), f"is required with {auth_name}")
    versions = {}
    for name in _VERSION_KEYS:
        if name in raw:
            versions[name] = _VERSIONS.get(str(raw[name]))
            if versions[name] is None:
                doc.problem((*where, name), f"expected one of {', '.join(_VERSIONS)}")
    if cert is None or key_file is None or auth is None:
        return None
    tls = Tls(
        cert,
        key_file,
        auth,
        ca,
        versions.get("min_version") or ssl.TLSVersion.TLSv1_2,
        versions.get("max_version"),
    )
    try:
        tls.context()
    except (ssl.SSLError, OSError) as exc:
        doc.problem(where, f"the certificate, key or CA cannot be loaded: {exc.strerror or exc}")
        return None
    return tls


def _users(doc: YamlDoc, raw: Any) -> Users | None:
    if raw is None:
        return None
    where = ("basic_auth_users",)
    if not isinstance(raw, dict) or not raw:
        doc.problem(where, "must be a mapping of user names to bcrypt hashes")
        return None
    hashes = {}
    for user, value in raw.items():
        hashed = str(value).encode() if isinstance(value, str) else b""
        if not hashed.startswith((b"$2a$", b"$2b$", b"$2y$")) or len(hashed) != 60:
            # never echo the value: it may be a password written by mistake
            doc.problem((*where, user), "must be a bcrypt hash ($2y$..., 60 characters)")
            continue
        hashes[str(user)] = hashed
    return Users(hashes)
