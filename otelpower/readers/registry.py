"""The only list of readers. Adding a reader is one line in ``BUILTIN``.

Everything else (the ``--protocol`` choices, config sections, ``run`` flags, subcommands,
dashboards, alert rules, ``compare``) asks this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path

from otelpower.config.schema import Config, DeviceConfig
from otelpower.config.schema import load_config as _load_config
from otelpower.core.quantities import OTHER_VENDOR, QUANTITIES, metric_prefix
from otelpower.readers.base import Command, ReaderSpec

#: module path of each built-in reader's spec (a module with ``SPEC``)
BUILTIN = (
    "otelpower.readers.native.spec",
    "otelpower.readers.matter.spec",
    "otelpower.readers.shelly.spec",
)

ALL = "all"  # ``--protocol all``: every registered reader
_WORD = re.compile(r"^[a-z][a-z0-9]{0,31}$")

_specs: dict[str, ReaderSpec] = {}
_builtin_loaded = False


def register(spec: ReaderSpec) -> ReaderSpec:
    """Add a reader (built-ins are added on first use; a test or plug-in may add its own).
    Refused (ValueError) when its name, metric prefix or config sections are taken."""
    _load_builtin()
    if _specs.get(spec.name) is spec:
        return spec
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


def vendors() -> tuple[str, ...]:
    """Every maker a device series can be named for: each reader's, and ``other`` when a
    reader reads any maker's devices (a Matter node of a maker no reader knows)."""
    own = [s.vendor for s in specs()]
    if any(s.any_vendor for s in specs()):
        own.append(OTHER_VENDOR)
    return tuple(dict.fromkeys(own))


def prefixes() -> tuple[str, ...]:
    """Every ``<vendor>_<protocol>_`` a device series may have (``tplink_native_``, ...)."""
    out = []
    for spec in specs():
        out += [metric_prefix(v, spec.protocol) for v in vendors()] if spec.any_vendor else []
        out.append(spec.prefix)
    return tuple(sorted(set(out), key=out.index))


def name_regex(suffix: str) -> str:
    """A ``__name__=~`` regex for ``suffix`` (``power_watts``, ``up``) under every prefix:
    ``(tplink_native|tplink_matter|other_matter)_power_watts``."""
    return f"({'|'.join(p.removesuffix('_') for p in prefixes())})_{suffix}"


def _asks_for(device: DeviceConfig, spec: ReaderSpec) -> bool:
    """The device names ``spec``'s reader: one of its sections, or its name in protocols."""
    if not device.reads(spec):
        return False
    named = device.protocols is not None and spec.name in device.protocols
    return named or any(key in device.sections for key in spec.device_sections)


def metric_vendors(spec: ReaderSpec) -> tuple[str, ...]:
    """The makers ``spec``'s device series may be named for: every one for a reader of any
    maker's devices (Matter), else its own."""
    return vendors() if spec.any_vendor else (spec.vendor,)


def matter_vendors() -> Mapping[int, str]:
    """Matter VendorID -> vendor, from each reader's ``matter_vendor_ids``."""
    return {vid: s.vendor for s in specs() for vid in s.matter_vendor_ids}


def load_config(path: Path | str | None, environ: Mapping[str, str] | None = None) -> Config:
    """The config file, validated with every registered reader's sections."""
    return _load_config(path, environ, specs=specs())


def get(name: str) -> ReaderSpec:
    found = {s.name: s for s in specs()}.get(name)
    if found is None:
        raise KeyError(f"no reader {name!r} (readers: {', '.join(names())})")
    return found


def chosen(name: str) -> tuple[ReaderSpec, ...]:
    """The readers ``--protocol name`` names (``all``: every registered one)."""
    return specs() if name == ALL else (get(name),)


def runnable(name: str, config: Config) -> tuple[tuple[ReaderSpec, ...], dict[str, str]]:
    """The readers ``--protocol name`` runs with ``config``, and why the others do not.

    A reader named on its own runs whatever its precondition says (the command line refuses
    it with the reason). ``all`` leaves out a reader that cannot start (its library missing,
    or its precondition unmet: no Matter server) only when no device of the config asks for
    it (by its section, ``matter:`` or ``shelly:``, or by name in ``protocols:``): a TP-Link
    house needs no Matter server and no Shelly client, but a listed Matter node without a
    server is refused as before, never silently unread."""
    if name != ALL:
        return chosen(name), {}
    run, left_out = [], {}
    for spec in specs():
        why = missing(spec) or spec.precondition(config)
        if not why:
            run.append(spec)
        elif any(_asks_for(d, spec) for d in config.devices):
            run.append(spec)  # the command line refuses it, with the reason
        else:
            left_out[spec.name] = why
    return tuple(run), left_out


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
    """A spec exports only catalogue quantities, and owns its name, its metric prefix and
    its config sections alone."""
    for q in spec.quantities:
        if QUANTITIES.get(q.key) is not q:
            raise ValueError(f"reader {spec.name}: {q.key} is not in otelpower.core.quantities")
    for what in ("name", "vendor", "protocol"):
        if not _WORD.match(getattr(spec, what)):
            raise ValueError(
                f"reader {spec.name!r}: its {what} must be lowercase letters and digits (it"
                " is part of metric and Kubernetes names)"
            )
    if spec.name == ALL:
        raise ValueError(f"reader {spec.name!r}: the name {ALL!r} is --protocol's for every reader")
    if spec.vendor == OTHER_VENDOR:
        raise ValueError(f"reader {spec.name}: vendor {OTHER_VENDOR!r} is reserved")
    for other in _specs.values():
        if other.name == spec.name:
            raise ValueError(f"a reader named {spec.name!r} is registered already")
        either_any = spec.any_vendor or other.any_vendor
        if other.prefix == spec.prefix or (either_any and other.protocol == spec.protocol):
            raise ValueError(
                f"readers {spec.name} and {other.name} would both export {spec.prefix}* metrics"
                " (one maker, one protocol: one reader)"
            )
        shared_ids = set(spec.matter_vendor_ids) & set(other.matter_vendor_ids)
        if shared_ids and spec.vendor != other.vendor:
            raise ValueError(
                f"readers {spec.name} and {other.name} both claim Matter VendorIDs {shared_ids}"
            )
        for kind in ("sections", "device_sections"):
            shared = set(getattr(spec, kind)) & set(getattr(other, kind))
            if shared:
                raise ValueError(
                    f"readers {spec.name} and {other.name} both claim {kind} {sorted(shared)}"
                )
