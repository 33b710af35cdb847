"""One plug request per poll where the protocol allows it, with the readings unchanged.

The reader asks python-kasa for one batched request per poll (kasa_link.BATCH_SIZE); these
tests count the requests each emulated plug answers and compare every reading with what the
unmodified python-kasa, at its own batch size, reads from the same plug.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.emulator import counting_handle
from otelpower.readers.native.links import Clients
from otelpower.readers.native.opening import open_link
from otelpower.readers.native.values import device_readings
from otelpower.sim import PlugOptions, builtin_profiles
from otelpower.sim.device import DeviceModel
from tests.sim.conftest import FIXTURES
from tests.sim.helpers import discovered

PROFILES = {p.stem: p for p in builtin_profiles()}
#: requests per steady poll: one, but for strips (python-kasa asks each outlet on its own:
#: an HS300 takes one child context per request, a P304M one control_child each) and TPAP
#: (the tapo client has no batched call: device info, then energy usage)
EXPECTED = {"hs300_xor": 7, "p304m_klap": 4, "p110_tpap": 2}


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The MAC of the plug answering each request, in order (handshakes are not requests)."""
    seen: list[str] = []
    monkeypatch.setattr(DeviceModel, "handle", counting_handle(lambda dev: seen.append(dev.mac)))
    yield seen


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.rglob("*.json")) if FIXTURES.is_dir() else []


async def _compare(simulator: Any, paths: list[Path], requests: list[str]) -> dict[str, int]:
    """Read each plug through the reader's link and through python-kasa alone; the steady
    poll's request count per profile stem."""
    plugs = await simulator.start([PlugOptions(p, static=True) for p in paths])
    counts = {}
    for path, plug in zip(paths, plugs, strict=True):
        link = await open_link(plug.host, plug.port, Clients(poll_timeout=10))
        try:
            await link.fetch()  # the update made while logging in
            requests.clear()
            fetched = await link.fetch()
            counts[path.stem] = len(requests)
        finally:
            await link.close()
        if plug.transport == "TPAP":
            continue  # python-kasa does not speak TPAP
        async with discovered(plug) as dev:
            assert fetched.readings == device_readings(dev), path.name
    return counts


async def test_one_request_per_poll(simulator, requests) -> None:
    counts = await _compare(simulator, list(PROFILES.values()), requests)
    assert counts == {stem: EXPECTED.get(stem, 1) for stem in PROFILES}


async def test_fixture_corpus_reads_the_same_batched(simulator, requests) -> None:
    paths = _fixtures()
    if not paths:
        pytest.skip(f"no fixture corpus at {FIXTURES}")
    counts = await _compare(simulator, paths, requests)
    assert all(n >= 1 for n in counts.values())


async def test_batching_comes_back_after_a_refused_batch(simulator, requests, caplog) -> None:
    """One batch answered JSON_DECODE_FAIL: python-kasa sends one query per request for the
    life of its Device; the link reads that way for a few polls, then batches again."""
    import logging

    from otelpower.readers.native.kasa_link import BATCH_AGAIN_AFTER

    (plug,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    link = await open_link(plug.host, plug.port, Clients(poll_timeout=10))
    caplog.set_level(logging.INFO, logger="otelpower")
    per_poll = []
    try:
        await link.fetch()
        plug.device.reject_batches = 1
        for _ in range(BATCH_AGAIN_AFTER + 3):
            requests.clear()
            fetched = await link.fetch()
            assert fetched.readings
            per_poll.append(len(requests))
    finally:
        await link.close()
    assert per_poll[1] > 1, per_poll  # one query per request meanwhile
    assert per_poll[-2:] == [1, 1], per_poll  # batched again
    said = [r for r in caplog.records if "one query per request" in r.getMessage()]
    assert len(said) == 1
