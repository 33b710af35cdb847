"""Stopping the native reader when a client library swallows the cancel.

python-kasa's discover_single takes a CancelledError that lands after the plug's reply for
its own, and aiohttp's timer can take the cancel of the poll's timeout for its own: either
way the poll's task went on polling after the reader was cancelled (a 300-plug soak under
faults hung in its teardown). Pure asyncio logic: the link is a stand-in, no I/O.
"""

from __future__ import annotations

import asyncio

import pytest

from otelpower.readers.native.opening import _KeepCancel
from otelpower.readers.native.reader import NativeReader
from tests.conftest import make_config


async def swallowing(entered: asyncio.Event) -> str:
    """What python-kasa's discover_single does with a cancel once the plug has replied."""
    entered.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return "found"
    return "slept"


@pytest.mark.parametrize("then", ["fails", "retries"])
async def test_a_stop_the_link_swallows_still_ends_the_reader(monkeypatch, then: str) -> None:
    """``fails``: the library raises its own error (the poll ends, the loop must not go on);
    ``retries``: it goes on with the poll (python-kasa retrying after aiohttp's timer took
    the cancel), which only a second cancel ends."""
    data = {
        "house": "h",
        "discovery": {"enabled": False},
        "devices": [{"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s", "device": "d"}],
    }
    # an hour between polls: a loop that missed the stop sleeps through the test's wait
    reader = NativeReader(make_config(data, poll={"interval": 3600, "timeout": 3600}))
    reader.devices[0].host = "127.0.0.1"
    entered = asyncio.Event()

    async def connected(_plug: object) -> object:
        await swallowing(entered)
        if then == "retries":
            await asyncio.sleep(3600)
        raise OSError("the library's own error after the swallowed cancel")

    monkeypatch.setattr(reader, "open", connected)
    task = asyncio.create_task(reader.run())
    await asyncio.wait_for(entered.wait(), 30)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=30)  # the stop is at once; the hour is not
    assert done, "the reader's poll loop went on after the stop"
    assert task.cancelled()


async def test_a_cancel_swallowed_in_discovery_is_raised_again() -> None:
    entered = asyncio.Event()

    async def discover() -> str:
        with _KeepCancel():
            return await swallowing(entered)

    task = asyncio.create_task(discover())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_poll_timeout_swallowed_in_discovery_still_times_the_poll_out() -> None:
    entered = asyncio.Event()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):  # the poll's deadline
            with _KeepCancel():
                await swallowing(entered)


async def test_nothing_swallowed_passes_through() -> None:
    with _KeepCancel():
        await asyncio.sleep(0)
    with pytest.raises(ValueError), _KeepCancel():
        raise ValueError("the library's own error")
