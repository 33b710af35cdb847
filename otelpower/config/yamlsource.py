"""Load YAML into plain Python values while remembering the line of every key path.

PyYAML keeps marks on nodes only, so we compose the node tree ourselves and convert it,
recording ``path -> line`` for error messages, and rejecting duplicate keys (PyYAML would
silently keep the last one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """One or more problems in a config file; the message names file, key path and line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid configuration\n{lines}")


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass
class YamlDoc:
    """A loaded document: the data plus where each key path sits in the file."""

    source: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: key paths whose whole value came from a ${VAR} reference
    from_env: set[Path_] = field(default_factory=set)
    #: the source text of every scalar (``482254000001`` stays text, not an int)
    raw: dict[Path_, str] = field(default_factory=dict)
    #: key paths whose value took a literal ``${VAR:-default}`` (the variable was unset)
    defaulted: set[Path_] = field(default_factory=set)

    def where(self, path: Path_) -> str:
        """``key path (line N)``, using the nearest ancestor that has a line."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe) if probe else None  # the root's line says nothing
        return f"{format_path(path)} (line {line})" if line else format_path(path)

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(f"{self.where(path)}: {message}")

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.source, self.problems)


def _expand(value: str, path: Path_, doc: YamlDoc, environ: dict[str, str]) -> str:
    if _VAR.fullmatch(value.strip()):
        doc.from_env.add(path)

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            if default:
                doc.defaulted.add(path)
            return default
        doc.problem(path, f"environment variable {name} is not set (referenced as ${{{name}}})")
        return ""

    return _VAR.sub(repl, value)


def _scalar(node: yaml.Node) -> Any:
    """Construct a scalar with YAML's safe type rules (ints, floats, bools, null, strings)."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _convert(node: yaml.Node, path: Path_, doc: YamlDoc, environ: dict[str, str]) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node))
            child = (*path, key)
            if key in out:
                doc.lines[child] = key_node.start_mark.line + 1
                doc.problem(child, "duplicate key")
                continue
            doc.lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, doc, environ)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc, environ) for i, item in enumerate(node.value)]
    doc.raw[path] = node.value
    value = _scalar(node)
    if isinstance(value, str):
        return _expand(value, path, doc, environ)
    return value


#: a config file is read up to this size (8 MiB: ~60,000 devices of five short lines each)
MAX_BYTES = 8 << 20
TOO_LARGE = "not read (a fleet that large wants several files, one per otelpower)"


def load_yaml(path: Path, environ: dict[str, str] | None = None) -> YamlDoc:
    """Parse ``path``; syntax errors and unknown env references become ConfigError."""
    source = str(path)
    env = dict(os.environ if environ is None else environ)
    try:
        if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
            raise ConfigError(source, ["not a regular file"])
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:  # parsing takes ~30x its size in memory, and minutes
            raise ConfigError(source, [f"larger than {MAX_BYTES >> 20} MiB: {TOO_LARGE}"])
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except ValueError as exc:  # a path no file can have (a NUL byte)
        raise ConfigError(repr(source), [f"cannot read file: {exc}"]) from None
    doc = YamlDoc(source=source, data=None)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            # an alias can repeat a node exponentially (a "billion laughs" file): none here
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise ConfigError(
                    source, [f"line {line}: YAML aliases (*{event.anchor}) are not supported"]
                )
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(source, [f"YAML syntax error at {where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"YAML error: {exc}"]) from None
    if len(nodes) > 1:
        raise ConfigError(source, ["expected one YAML document, found several"])
    if nodes and nodes[0] is not None:
        try:
            doc.data = _convert(nodes[0], (), doc, env)
        except yaml.YAMLError as exc:
            raise ConfigError(source, [f"YAML error: {exc}"]) from None
    return doc


#: the value ``otelpower discover``'s YAML snippet leaves for the user to fill in
PLACEHOLDER = "CHANGE-ME"


def placeholders(doc: YamlDoc, marker: str = PLACEHOLDER) -> list[str]:
    """``key path (line N)`` of every scalar still holding ``marker`` (any case), in order."""
    found: list[str] = []

    def walk(value: Any, path: Path_) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*path, i))
        elif isinstance(value, str) and value.strip().upper() == marker.upper():
            found.append(doc.where(path))

    walk(doc.data, ())
    return found
