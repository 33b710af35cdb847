"""Matter reader: a client of a Matter controller server over its WebSocket API.

Uses python-matter-server's client SDK. Keeps its own raw attribute state per node from the
server's events, re-reads the measurement attributes on the poll interval (subscriptions
alone may report rarely), and publishes one snapshot per node. Disconnects are survived:
reconnect with capped backoff, then resync every node from the server's full node list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from matter_server.client import MatterClient
from matter_server.client.models.node import MatterNode
from matter_server.common.models import EventType
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otelpower.config import Config, DeviceConfig
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.core.quantities import OTHER_VENDOR, metric_prefix
from otelpower.readers import registry
from otelpower.readers.base import Reader, ReaderSpec
from otelpower.readers.matter import settings
from otelpower.readers.matter import values as mv

log = logging.getLogger(__name__)

UNASSIGNED = "unassigned"


@dataclass
class _Node:
    node_id: int
    attrs: dict[str, Any]
    available: bool
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)
    subscribed: frozenset[str] = frozenset()


_SECRET_QUERY = re.compile(r"([?&;](?:token|access_token|key|password|secret)=)[^&\s'\"]+", re.I)


def redact_url(url: str) -> str:
    """The server URL without any user:password part, for logs and labels."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class MatterReader(Reader):
    def __init__(
        self,
        config: Config,
        store: SnapshotStore | None = None,
        *,
        recorder: PollRecorder | None = None,
        url: str | None = None,
        spec: ReaderSpec | None = None,
    ) -> None:
        super().__init__(config, spec or registry.get("matter"), store=store, recorder=recorder)
        self.url = url or settings.server_url(config) or ""
        if not self.url:
            raise ValueError(
                "no Matter server: set matter.url in the config or pass --matter-server"
            )
        self.connected = False
        self._client: MatterClient | None = None
        self._nodes: dict[int, _Node] = {}
        self._keys: dict[int, str] = {}  # node id -> store key it publishes under
        self._logged_unmatched: set[int] = set()
        self._by_node_id = {
            node_id: d
            for d in config.devices
            if (node_id := settings.node_id(d)) is not None and d.reads(self.spec)
        }
        self._by_mac = {d.device_id: d for d in config.devices}
        self._vendors = registry.matter_vendors()  # VendorID -> the maker's metric prefix
        self._server_problem = ""
        for dev in self._by_node_id.values():
            self._publish_placeholder(dev, DeviceStatus.PENDING, "")

    # -- self-metrics -------------------------------------------------------------------

    def register_metrics(self, meter: Meter) -> None:
        def connected(_: CallbackOptions) -> Iterable[Observation]:
            yield Observation(1 if self.connected else 0, {"server": redact_url(self.url)})

        meter.create_observable_gauge(
            "otelpower_matter_server_connected",
            callbacks=[connected],
            description="1 while the Matter server's WebSocket API is connected",
        )

    # -- connection loop ----------------------------------------------------------------

    async def run(self) -> None:
        delay = 1.0
        try:
            while True:
                try:
                    await self._session()
                    delay = 1.0
                    problem = "connection closed by the server"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure: report, back off, reconnect
                    problem = self._scrub(" ".join(str(exc).split()))[:200] or type(exc).__name__
                self._server_down(problem)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(self.config.backoff_max, 1.0), 30.0)
        finally:
            self._server_down("reader stopped", quiet=True)

    async def _session(self) -> None:
        timeout = max(self.config.poll_timeout, 5.0)
        async with aiohttp.ClientSession() as http:
            client = MatterClient(self.url, http)
            await asyncio.wait_for(client.connect(), timeout)
            ready = asyncio.Event()
            listen = asyncio.create_task(client.start_listening(ready), name="matter listen")
            waiter = asyncio.create_task(ready.wait())
            try:
                await asyncio.wait(
                    [listen, waiter], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not ready.is_set():
                    if listen.done():
                        listen.result()  # raise its error
                        raise ConnectionError("connection closed before the node list came")
                    raise TimeoutError(f"no node list from the server within {timeout:g}s")
                self._client = client
                unsubscribe = client.subscribe_events(self._on_event)
                self._server_up()
                self._resync(client.get_nodes())
                refresher = asyncio.create_task(self._refresh_loop(client), name="matter read")
                try:
                    await listen  # returns when the connection closes
                finally:
                    refresher.cancel()
                    unsubscribe()
                    await asyncio.gather(refresher, return_exceptions=True)
            finally:
                waiter.cancel()
                listen.cancel()
                await asyncio.gather(listen, waiter, return_exceptions=True)
                self._client = None
                with contextlib.suppress(Exception):
                    await client.disconnect()

    def _scrub(self, text: str) -> str:
        """An error text without the URL's secrets (aiohttp quotes the whole URL)."""
        text = text.replace(self.url, redact_url(self.url))
        return _SECRET_QUERY.sub(r"\1...", text)

    def _server_up(self) -> None:
        self.connected = True
        self._server_problem = ""
        log.info("Matter server %s: connected", redact_url(self.url))

    def _server_down(self, problem: str, *, quiet: bool = False) -> None:
        was_connected, self.connected = self.connected, False
        for node in list(self._nodes.values()):
            self._untrack(node)
        self._nodes.clear()
        detail = f"Matter server unreachable: {problem}"
        for key in list(self._keys.values()):
            snap = self.store.get(key)
            if snap is not None and snap.status is not DeviceStatus.OFFLINE:
                self.publisher.publish(  # the server line below explains it
                    snap.device_id,
                    snap.labels,
                    DeviceStatus.OFFLINE,
                    who=snap.labels.get("device", snap.device_id),
                    info=snap.info,
                    detail=detail,
                    quiet=True,
                    vendor=snap.vendor,
                )
        for dev in self._by_node_id.values():
            self._publish_placeholder(dev, DeviceStatus.OFFLINE, detail)
        if quiet:
            return
        if was_connected or problem != self._server_problem:
            log.warning(
                "Matter server %s: %s; retrying with backoff (check that the server runs and"
                " the URL is right)",
                redact_url(self.url),
                problem,
            )
        self._server_problem = problem

    # -- node state ---------------------------------------------------------------------

    def _resync(self, nodes: list[MatterNode]) -> None:
        seen = {n.node_id for n in nodes}
        for node_id in [n for n in self._keys if n not in seen]:  # gone while we were away
            self._forget(node_id)
        for node in nodes:
            self._track(node)

    def _on_event(self, event: EventType, data: Any) -> None:
        if event in (EventType.NODE_ADDED, EventType.NODE_UPDATED) and isinstance(data, MatterNode):
            self._track(data)
        elif event is EventType.NODE_REMOVED:
            self._forget(int(data))

    def _track(self, node: MatterNode) -> None:
        state = self._nodes.get(node.node_id)
        attrs = dict(node.node_data.attributes)
        if state is None:
            state = _Node(node.node_id, attrs, node.available)
            self._nodes[node.node_id] = state
        else:
            state.attrs = attrs
            state.available = node.available
        self._subscribe(state)
        self._publish(state)

    def _subscribe(self, state: _Node) -> None:
        """Follow each measurement attribute of the node with its own subscription."""
        client = self._client
        paths = frozenset(mv.fresh_paths(state.attrs))
        if client is None or paths == state.subscribed:
            return
        self._untrack(state)
        for attr_path in sorted(paths):
            state.unsubscribe.append(
                client.subscribe_events(
                    self._on_attribute(state.node_id, attr_path),
                    EventType.ATTRIBUTE_UPDATED,
                    node_filter=state.node_id,
                    attr_path_filter=attr_path,
                )
            )
        state.subscribed = paths

    def _on_attribute(self, node_id: int, attr_path: str) -> Callable[[EventType, Any], None]:
        def callback(_: EventType, value: Any) -> None:
            state = self._nodes.get(node_id)
            if state is not None:
                state.attrs[attr_path] = value
                self._publish(state)

        return callback

    def _untrack(self, state: _Node) -> None:
        for unsubscribe in state.unsubscribe:
            with contextlib.suppress(Exception):
                unsubscribe()
        state.unsubscribe.clear()
        state.subscribed = frozenset()

    def _forget(self, node_id: int) -> None:
        state = self._nodes.pop(node_id, None)
        if state is not None:
            self._untrack(state)
        key = self._keys.pop(node_id, None)
        if key is not None:
            self.publisher.remove(key)
        dev = self._by_node_id.get(node_id)
        if dev is not None:
            self._publish_placeholder(dev, DeviceStatus.OFFLINE, "node removed from the server")

    async def _refresh_loop(self, client: MatterClient) -> None:
        """Re-read measurement attributes of every available node on the poll interval."""
        while True:
            await asyncio.sleep(self.config.poll_interval)
            nodes = [n for n in self._nodes.values() if n.available and mv.has_energy(n.attrs)]
            await asyncio.gather(*(self._refresh(client, n) for n in nodes))

    async def _refresh(self, client: MatterClient, state: _Node) -> None:
        paths = mv.fresh_paths(state.attrs)
        if not paths:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            values = await asyncio.wait_for(
                client.read_attribute(state.node_id, paths), self.config.poll_timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a node that cannot be read now keeps its last state
            log.debug("Matter node %s: read failed: %s", state.node_id, exc)
            status = DeviceStatus.TIMEOUT if isinstance(exc, TimeoutError) else DeviceStatus.ERROR
            self._poll_done(state, loop.time() - started, status)
            return
        if state.node_id in self._nodes and isinstance(values, dict):
            mv.merge(state.attrs, values.items())
            self._publish(state)
        self._poll_done(state, loop.time() - started, DeviceStatus.OK)

    def _poll_done(self, state: _Node, seconds: float, status: DeviceStatus) -> None:
        snap = self.store.get(self._keys.get(state.node_id, ""))
        if snap is not None:
            device = snap.labels.get("device", "")
            self.publisher.polled(snap.device_id, device, seconds, status)

    # -- publishing ---------------------------------------------------------------------

    def _device_for(self, state: _Node) -> tuple[DeviceConfig | None, list[str]]:
        macs = mv.hardware_addresses(state.attrs)
        for mac in macs:
            if mac in self._by_mac:
                return self._by_mac[mac], macs
        return self._by_node_id.get(state.node_id), macs

    def _labels(self, state: _Node) -> tuple[str, dict[str, str], str] | None:
        """The node's device id, labels and maker (names its metrics: the config's
        ``vendor:``, else its VendorID's reader, else ``other``), or None: not exported."""
        dev, macs = self._device_for(state)
        if dev is not None and not dev.reads(self.spec):
            return None  # its protocols leave Matter out
        if dev is not None:
            return dev.device_id, dev.labels(self.config.house), dev.vendor
        if not mv.has_energy(state.attrs):
            return None  # not a meter: nothing to export
        device_id = macs[0] if macs else f"matter-node-{state.node_id}"
        name = f"matter-node-{state.node_id}"
        vid = mv.vendor_id(state.attrs)
        vendor = self._vendors.get(vid, OTHER_VENDOR) if vid is not None else OTHER_VENDOR
        if state.node_id not in self._logged_unmatched:
            self._logged_unmatched.add(state.node_id)
            log.warning(
                "Matter node %s (MAC %s, VendorID %s) meters energy but is not in %s; exported"
                " as device=%s under %s*: add it to the config (device_id or matter.node_id,"
                " and vendor)",
                state.node_id,
                ", ".join(macs) or "unknown",
                "unknown" if vid is None else f"0x{vid:04X}",
                self.config.source,
                name,
                metric_prefix(vendor, self.spec.protocol),
            )
        labels = {
            "house": self.config.house,
            "room": UNASSIGNED,
            "shelf": UNASSIGNED,
            "device": name,
            "device_id": device_id,
        }
        return device_id, labels, vendor

    def _publish(self, state: _Node) -> None:
        found = self._labels(state)
        if found is None or not self.config.owns(found[0]):
            return  # not a meter, or another shard's
        device_id, labels, vendor = found
        key = self._keys.setdefault(state.node_id, device_id)
        if key != device_id:  # the node's identity changed (config or MAC): move it
            self.publisher.remove(key)
            self._keys[state.node_id] = key = device_id
        if state.available:
            status, readings, detail = DeviceStatus.OK, mv.readings(state.attrs), ""
        else:
            status, readings, detail = DeviceStatus.OFFLINE, (), "node unavailable"
        self.publisher.publish(
            device_id,
            labels,
            status,
            who=f"Matter node {state.node_id} ({labels['device']})",
            info=mv.device_info(state.attrs),
            readings=readings,
            detail=detail,
            vendor=vendor,
        )

    def _publish_placeholder(self, dev: DeviceConfig, status: DeviceStatus, detail: str) -> None:
        """A configured node the server has not shown us (yet): up=0, no values."""
        if dev.device_id in self._keys.values():
            return
        previous = self.store.get(dev.device_id)
        self.publisher.publish(  # not logged: the server's or the node's own line says why
            dev.device_id,
            dev.labels(self.config.house),
            status,
            who=dev.name(),
            info=previous.info if previous else {},
            detail=detail,
            quiet=True,
            vendor=dev.vendor,
        )
