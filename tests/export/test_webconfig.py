"""The web config file (exporter-toolkit format): what is accepted, and one named line for
everything that is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.tlscerts import make_certs
from otelpower.config import ConfigError
from otelpower.export import webconfig

HASH = "$2b$04$" + "a" * 53  # the shape of a bcrypt hash
PAIR = "cert_file: server.crt, key_file: server.key"


def _load(tmp_path: Path, text: str) -> webconfig.WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return webconfig.load(path)


def _problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return str(info.value)


def test_a_node_exporter_style_file(tmp_path: Path) -> None:
    make_certs(tmp_path)
    web = _load(
        tmp_path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  min_version: TLS13\nbasic_auth_users:\n  prometheus: " + HASH + "\n",
    )
    assert web.tls is not None and web.tls.cert_file == tmp_path / "server.crt"
    assert web.users is not None and set(web.users.hashes) == {"prometheus"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http_server_config: {http2: false}\n", "http_server_config (line 1): not supported"),
        (
            "tls_server_config: {cert_file: server.crt}\n",
            "tls_server_config.key_file (line 1): is required",
        ),
        (
            "tls_server_config: {cert: abc, cert_file: server.crt, key_file: server.key}\n",
            "cert (line 1): not supported",
        ),
        (
            "tls_server_config: {cert_file: nope.crt, key_file: server.key}\n",
            "nope.crt: no such file",
        ),
        (
            f"tls_server_config: {{{PAIR}, client_auth_type: Always}}\n",
            "client_auth_type (line 1): expected one of NoClientCert",
        ),
        (
            f"tls_server_config: {{{PAIR}, client_auth_type: RequireAndVerifyClientCert}}\n",
            "client_ca_file (line 1): is required with RequireAndVerifyClientCert",
        ),
        ("tls_server_config: {cert_file: server.key, key_file: server.crt}\n", "cannot be loaded"),
        (
            "basic_auth_users: {admin: hunter2}\n",
            "basic_auth_users.admin (line 1): must be a bcrypt hash",
        ),
        ("- a\n", "expected a mapping"),
    ],
)
def test_problems_are_named(tmp_path: Path, text: str, expected: str) -> None:
    make_certs(tmp_path)
    message = _problems(tmp_path, text)
    assert expected in message
    assert "hunter2" not in message  # a password written by mistake is never echoed


def test_users_check_and_remember(tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))
    users = webconfig.Users({"u": hashed})
    assert users.check("u", "pw") and users.check("u", "pw")
    assert not users.check("u", "other") and not users.check("x", "pw")
    assert not users.check("u", "p" * 100)  # beyond bcrypt's 72 bytes: refused, no exception
