"""The only list of readers. Adding a reader is one line in ``BUILTIN``.

Everything else (the ``--protocol`` choices, config sections, ``run`` flags, subcommands,
dashboards, alert rules, ``compare``) asks this module.
"""

from __future__ import annotations

import importlib
import importlib.util

from otelpower.core.quantities import QUANTITIES
from otelpower.readers.base import Command, ReaderSpec

#: module path of each built-in reader's spec (a module with ``SPEC``)
BUILTIN = (
    "otelpower.readers.native.spec",
    "otelpower.readers.matter.spec",
)

ALL = "all"  # ``--protocol all``: every registered reader

_specs: dict[str, ReaderSpec] = {}
_builtin_loaded = False


def register(spec: ReaderSpec) -> ReaderSpec:
    """Add a reader (built-ins are added on first use; a test or plug-in may add its own)."""
    _load_builtin()
    _check(spec)
    _specs[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _specs.pop(name, None)


def specs() -> tuple[ReaderSpec, ...]:
    _load_builtin()
    return tuple(_specs.values())


def names() -> tuple[str, ...]:
    return tuple(s.name for s in specs())


def choices() -> tuple[str, ...]:
    """The ``--protocol`` choices: every registered reader, and ``all`` of them."""
    return (*names(), ALL)


def protocols() -> tuple[str, ...]:
    """The distinct ``protocol`` labels, in registration order."""
    return tuple(dict.fromkeys(s.protocol for s in specs()))


def protocol_regex() -> str:
    """``native|matter``: for PromQL matchers in dashboards, alerts and ``compare``."""
    return "|".join(protocols())


def get(name: str) -> ReaderSpec:
    found = {s.name: s for s in specs()}.get(name)
    if found is None:
        raise KeyError(f"no reader {name!r} (readers: {', '.join(names())})")
    return found


def chosen(name: str) -> tuple[ReaderSpec, ...]:
    """The readers ``--protocol name`` runs."""
    return specs() if name == ALL else (get(name),)


def missing(spec: ReaderSpec | Command) -> str | None:
    """Why a reader's (or command's) libraries cannot be imported, naming the extra; or None."""
    absent = [m for m in spec.requires if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    what = f"the {spec.name} reader" if isinstance(spec, ReaderSpec) else f"otelpower {spec.name}"
    return (
        f"{what} needs {', '.join(absent)}, which is not installed:"
        f" pip install 'otelpower[{spec.extra or spec.name}]'"
    )


def _load_builtin() -> None:
    global _builtin_loaded
    if _builtin_loaded:
        return
    for path in BUILTIN:
        spec = importlib.import_module(path).SPEC
        _check(spec)
        _specs[spec.name] = spec
    _builtin_loaded = True


def _check(spec: ReaderSpec) -> None:
    """A spec exports only catalogue quantities and owns its config sections alone."""
    for q in spec.quantities:
        if QUANTITIES.get(q.key) is not q:
            raise ValueError(f"reader {spec.name}: {q.key} is not in otelpower.core.quantities")
    for other in _specs.values():
        if other.name == spec.name:
            continue
        for kind in ("sections", "device_sections"):
            shared = set(getattr(spec, kind)) & set(getattr(other, kind))
            if shared:
                raise ValueError(
                    f"readers {spec.name} and {other.name} both claim {kind} {sorted(shared)}"
                )
