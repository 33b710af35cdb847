"""Typed getters over a loaded YAML file: every problem is recorded with its key path.

Used by the core schema and by each reader's config sections (``ReaderSpec.sections``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from otelpower.config.yamlsource import Path_, YamlDoc

#: parses one config section (``raw`` is None when the file has no such key) into the value
#: readers get from ``Config.section(name)`` / ``DeviceConfig.section(name)``; problems go to
#: ``fields.doc.problem(path, ...)`` so they are reported with file, key and line
type SectionParser = Callable[["Fields", Any, Path_], Any]

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^[^\x00-\x1f]{1,128}$")


class Fields:
    """Typed getters over a YamlDoc that record problems instead of raising."""

    def __init__(self, doc: YamlDoc, environ: Mapping[str, str] | None = None) -> None:
        self.doc = doc
        self.environ: Mapping[str, str] = environ or {}

    def secret_file(
        self, m: dict[str, Any], key: str, path: Path_, what: str, max_bytes: int | None = None
    ) -> str | None:
        """The stripped text of the mounted secret file ``m[key]`` names; None when the key is
        absent or the file does not exist (an optional Secret that was not created: said
        once, ``what`` naming what is then missing, and the caller falls back). A file that
        is not regular, not UTF-8, over ``max_bytes`` or unreadable is a problem, reported
        without a byte of it."""
        if m.get(key) is None:  # a null *_file counts as absent
            return None
        file_path = self.text(m, key, path)
        if file_path is None:
            return None
        secret = Path(file_path)
        try:
            if secret.exists() and not secret.is_file():
                raise IsADirectoryError(0, "not a regular file")
            with secret.open("rb") as f:
                data = f.read() if max_bytes is None else f.read(max_bytes + 1)
            if max_bytes is not None and len(data) > max_bytes:
                self.doc.problem((*path, key), f"the secret file is over {max_bytes} bytes")
                return None
            return data.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.doc.problem((*path, key), "the secret file is not UTF-8 text")
        except FileNotFoundError:
            where = ".".join(str(k) for k in (*path, key))
            log.warning("%s: %s %s does not exist: no %s", self.doc.source, where, file_path, what)
        except OSError as exc:
            self.doc.problem((*path, key), f"cannot read secret file: {exc.strerror}")
        return None

    def mapping(self, value: Any, path: Path_, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.doc.problem(path, f"must be a mapping, got {kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.doc.problem((*path, key), f"unknown key (allowed: {hint})")
        return value

    def text(self, m: dict[str, Any], key: str, path: Path_, *, required: bool = False) -> Any:
        value = m.get(key)
        if value is None:
            if required:
                self.doc.problem((*path, key), "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.doc.problem((*path, key), f"must be a string, got {kind(value)}")
            return None
        value = str(value)
        if not _LABEL.match(value) or not value.strip():
            self.doc.problem((*path, key), "must be 1-128 printable characters, not only spaces")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.doc.problem((*path, key), "is not valid Unicode text (a lone surrogate escape)")
            return None
        return value

    def _from_env(self, value: Any, path: Path_, kind: type) -> Any:
        """Numbers that came from ${VAR} arrive as text; read them as numbers."""
        if isinstance(value, str) and path in self.doc.from_env:
            try:
                return kind(value)
            except ValueError:
                return value
        return value

    def number(
        self, m: dict[str, Any], key: str, path: Path_, default: float, lo: float, hi: float
    ) -> float:
        value = self._from_env(m.get(key, default), (*path, key), float)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.doc.problem((*path, key), f"must be a number, got {kind(value)}")
            return default
        if not lo <= value <= hi:
            self.doc.problem((*path, key), f"must be between {lo:g} and {hi:g}, got {value:g}")
            return default
        return float(value)

    def integer(
        self, m: dict[str, Any], key: str, path: Path_, default: int | None, lo: int, hi: int
    ) -> int | None:
        value = self._from_env(m.get(key, default), (*path, key), int)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.doc.problem((*path, key), f"must be an integer, got {kind(value)}")
            return default
        if not lo <= value <= hi:
            self.doc.problem((*path, key), f"must be between {lo} and {hi}, got {value}")
            return default
        return value

    def choice(
        self, m: dict[str, Any], key: str, path: Path_, default: str, allowed: tuple[str, ...]
    ) -> str:
        value = m.get(key, default)
        if value not in allowed or not isinstance(value, str):
            self.doc.problem(
                (*path, key), f"must be one of {', '.join(allowed)}, got {value!r:.40}"
            )
            return default
        return value

    def flag(self, m: dict[str, Any], key: str, path: Path_, default: bool) -> bool:
        value = m.get(key, default)
        if not isinstance(value, bool):
            self.doc.problem((*path, key), f"must be true or false, got {kind(value)}")
            return default
        return value


def kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", bool: "a boolean", str: "a string"}.get(
        type(value), type(value).__name__
    )
