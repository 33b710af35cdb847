"""--shard i/N: replicas split the plugs by device_id hash, together reading each exactly once."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from harness.ports import free_port
from harness.processes import cli_process as process
from harness.promtext import find, scrape
from harness.wait import wait_for
from otelpower.config.sharding import Shard, parse_shard, shard_of


def macs(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [":".join(f"{rng.randrange(256):02x}" for _ in range(6)) for _ in range(n)]


def test_shards_partition_the_devices() -> None:
    ids = macs(900)
    shards = [Shard(i, 3) for i in range(3)]
    owned = [{d for d in ids if s.owns(d)} for s in shards]
    assert set().union(*owned) == set(ids)
    assert sum(len(o) for o in owned) == len(ids)  # disjoint
    assert all(len(o) > 200 for o in owned)  # roughly even
    assert all(Shard(0, 1).owns(d) for d in ids)
    assert shard_of("48:22:54:00:00:01", 4) == shard_of("48:22:54:00:00:01", 4)  # stable


@pytest.mark.parametrize("bad", ["", "1", "2/2", "-1/2", "a/b", "0/0"])
def test_bad_shard_spec(bad: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(bad)


@pytest.mark.live  # otelpower processes
async def test_two_processes_cover_every_plug_once(tmp_path: Path) -> None:
    config = tmp_path / "plugs.yaml"
    ports = [free_port()]
    while (port := free_port()) == ports[0]:  # two closed probes can get the same port
        pass
    ports.append(port)
    async with process("sim", "--count", "8", "--config-out", str(config)):
        await wait_for(lambda: config.exists() and config.stat().st_size > 0, timeout=20)
        data = yaml.safe_load(config.read_text())
        data["poll"] = {"interval": 0.5, "timeout": 3}
        data["discovery"] = {"enabled": False}
        # loopback only, as the other process tests: on 0.0.0.0 the endpoint also collides
        # with an emulated plug that got the same port number on its own 127.x address
        data["prometheus"] = {"host": "127.0.0.1"}
        config.write_text(yaml.safe_dump(data))
        everyone = {d["device_id"] for d in data["devices"]}
        assert len(everyone) == 8
        args = ["run", str(config), "--prometheus-port"]
        async with (
            process(*args, str(ports[0]), "--shard", "0/2") as shard0,
            process(*args, str(ports[1]), env={"OTELPOWER_SHARD": "1/2"}) as shard1,
        ):

            def read(port: int) -> set[str] | None:
                """The device_ids with power on ``port``; None while it does not answer."""
                try:
                    power = find(scrape(port), "tplink_native_power_watts")
                except OSError:
                    return None
                return {dict(k)["device_id"] for k in power}

            def covered() -> bool:
                # both must answer: all plugs may hash to one shard, leaving the other empty
                seen = [read(p) for p in ports]
                return None not in seen and seen[0] | seen[1] == everyone

            try:
                await wait_for(covered, timeout=30)
            except AssertionError:  # say which plugs are missing and what the shards logged
                missing = everyone - set().union(*(read(p) or set() for p in ports))
                logs = []
                for shard in (shard0, shard1):
                    shard.kill()
                    logs.append((await shard.communicate())[1].decode()[-3000:])
                raise AssertionError(f"missing {sorted(missing)}; logs: {logs}") from None
            first, second = read(ports[0]), read(ports[1])
            assert not first & second
            assert first == {d for d in everyone if shard_of(d, 2) == 0}
            instances = [
                {dict(k)["service_instance_id"] for k in find(scrape(p), "target_info")}
                for p in ports
            ]
            assert instances[0] != instances[1]


def test_a_shard_keeps_only_its_own_devices() -> None:
    from otelpower.config.sharding import Shard
    from tests.conftest import make_config

    devices = [
        {"device_id": f"48:22:54:00:{n >> 8:02x}:{n & 255:02x}", "room": "r", "shelf": f"s{n}"}
        for n in range(300)
    ]
    config = make_config({"devices": devices})
    parts = [config.sharded(Shard(i, 3)) for i in range(3)]
    assert sum(len(p.devices) for p in parts) == 300
    for part in parts:
        assert part.listed == 300
        assert part.devices == part.owned_devices()  # nothing of the other shards kept
    assert {d.device_id for p in parts for d in p.devices} == {d["device_id"] for d in devices}
