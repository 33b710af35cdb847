"""What a reader is: a ``ReaderSpec`` (what it offers) and a ``Reader`` (what runs).

A reader is one package under otelpower/readers/ with a ``spec.py`` holding its ReaderSpec,
and one line in otelpower/readers/registry.py. The spec is imported at start-up for every
reader, so it imports no client library: ``create`` imports the reader's module when the
reader is actually used.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otelpower.config.fields import SectionParser
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder, Publisher
from otelpower.core.quantities import Quantity, metric_prefix

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelpower.config.schema import Config

__all__ = ["Command", "Reader", "ReaderSpec", "RunOption", "SectionParser"]


@dataclass(frozen=True)
class RunOption:
    """A ``run`` flag a reader offers; ``apply`` folds its value into the config (or raises
    ValueError, reported as ``error: FLAG: message``)."""

    flags: tuple[str, ...]
    help: str
    apply: Callable[[Config, Any], Config]
    metavar: str | None = None
    repeatable: bool = False  # given more than once: ``apply`` gets the list


@dataclass(frozen=True)
class Command:
    """A subcommand a reader (or a tool such as ``sim``) offers; ``run`` returns the exit code."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    #: import names of the libraries it needs beyond the core, and the extra installing them
    requires: tuple[str, ...] = ()
    extra: str = ""
    #: ``--help`` text after the options: examples, the environment variables it reads
    epilog: str = ""


def _nothing(_: Config) -> str | None:
    return None


@dataclass(frozen=True)
class ReaderSpec:
    """Everything the rest of otelpower knows about one reader."""

    #: the reader's key everywhere: the ``--protocol`` choice, ``protocols:`` entries, the
    #: self-metrics' ``protocol`` label, the resource and instance id, its k8s objects
    name: str
    vendor: str  # the maker whose devices it reads; metric names <vendor>_<protocol>_<quantity>
    protocol: str  # the ``protocol`` label on every device series (native, matter)
    description: str
    quantities: tuple[Quantity, ...]
    create: Callable[[Config, SnapshotStore, PollRecorder], Reader]
    #: top-level config sections (e.g. ``matter:``) and per-device sections (``native:``)
    sections: Mapping[str, SectionParser] = field(default_factory=dict)
    device_sections: Mapping[str, SectionParser] = field(default_factory=dict)
    remedies: Mapping[DeviceStatus, str] = field(default_factory=dict)
    run_options: tuple[RunOption, ...] = ()
    commands: tuple[Command, ...] = ()
    #: why ``run`` cannot start this reader with ``config`` (a message), or None
    precondition: Callable[[Config], str | None] = _nothing
    #: what ``check`` says about this reader's part of the config, or None
    summary: Callable[[Config], str | None] = _nothing
    #: import names of the libraries it needs, and the pip extra that installs them
    requires: tuple[str, ...] = ()
    extra: str = ""
    #: client-library loggers turned down to ERROR unless --log-level DEBUG
    quiet_loggers: tuple[str, ...] = ()
    #: client-library loggers never shown below INFO, not even at DEBUG (they log secrets)
    secret_loggers: tuple[str, ...] = ()
    #: reads devices of any maker (a standard such as Matter): each device's series carry
    #: its own maker's prefix (``vendor`` is then only the default)
    any_vendor: bool = False
    #: the maker's Matter VendorIDs: a Matter node the config does not list is named with
    #: this reader's vendor when its BasicInformation VendorID is one of these
    matter_vendor_ids: tuple[int, ...] = ()

    @property
    def prefix(self) -> str:
        return metric_prefix(self.vendor, self.protocol)


class Reader(ABC):
    """A running reader: polls or listens, and publishes through ``self.publisher``."""

    def __init__(
        self,
        config: Config,
        spec: ReaderSpec,
        *,
        store: SnapshotStore | None = None,
        recorder: PollRecorder | None = None,
    ) -> None:
        self.config = config
        self.spec = spec
        self.store = store if store is not None else SnapshotStore()
        self.publisher = Publisher(spec.name, self.store, spec.remedies, recorder)

    @abstractmethod
    async def run(self) -> None:
        """Read until cancelled; a device's failure is a state, never an exception here."""

    def register_metrics(self, meter: Meter) -> None:  # noqa: B027 (optional, not abstract)
        """Instruments of the reader's own beyond the contract's (none by default)."""
