"""A discovery flood against ``otelpower run``, with the same run unflooded as its baseline.

One ``otelpower run CONFIG`` process (default poll settings: every 15 s, timeout 10 s) reads
two listed plugs (KLAP and XOR, ``harness.emulator.EmulatorProcess``) with ``discovery.adopt``
on and discovery every ``--round`` seconds to a flooder in this process. The flooder answers
every discovery probe with ``--replies`` legacy replies, each from its own loopback address
(source port 9999, as python-kasa requires) with a MAC never seen before. Three windows of
``--seconds`` each: before the flood (the baseline), during it, and after it (once one more
window has passed: adopted plugs are forgotten after 3 polls with backoff). Per window:
CPU of the process tree (% of one core), peak RSS, peak open descriptors, log lines
written, the largest /metrics body, the listed plugs' oldest reading (from otelpower's own
``otelpower_last_success_timestamp_seconds``), and the discovery probes otelpower sent to
the spoofed addresses (each has a socket on UDP 20002, where a unicast probe also goes). The flood's
figures are reported with their ratio to the baseline.

    .venv/bin/python bench/flood.py [--replies 5000] [--seconds 60] [--round 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from figures import Figure, log, table

from harness import proctree
from harness.emulator import EmulatorProcess, raise_fd_limit
from harness.processes import OtelpowerRun, http_get
from harness.promtext import find, parse
from otelpower.sim import builtin_profiles
from otelpower.sim.profile import load_profile
from otelpower.sim.xor import xor_decrypt, xor_encrypt

NET = "127.232"  # the flood's addresses (the emulator's are 127.231)


class Flooder:
    """Answers each legacy discovery probe on (NET.0.1, 9999) with spoofed replies."""

    def __init__(self, replies: int, template: dict) -> None:
        self.sources = [f"{NET}.{1 + n // 250}.{1 + n % 250}" for n in range(replies)]
        self.template = template
        self.on = False
        self.probes = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((f"{NET}.0.1", 9999))
        self.sock.settimeout(0.2)
        self.watch = []
        for source in self.sources:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((source, 20002))  # a unicast probe goes to 9999 and 20002
            s.setblocking(False)
            self.watch.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def probes_to_spoofed(self) -> int:
        count = 0
        for s in self.watch:
            while True:
                try:
                    s.recv(2048)
                except BlockingIOError:
                    break
                count += 1
        return count

    def _run(self) -> None:
        rng = random.Random(7)
        answered: set[tuple[str, int]] = set()  # python-kasa sends each probe 3 times
        senders = []
        for source in self.sources:  # bound once: a reply is one sendto
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((source, 9999))  # python-kasa takes legacy replies from port 9999 only
            senders.append(s)
        try:
            while not self.stop.is_set():
                try:
                    data, addr = self.sock.recvfrom(2048)
                    json.loads(xor_decrypt(data))
                except (TimeoutError, ValueError):
                    continue
                if not self.on or addr in answered:
                    continue
                answered.add(addr)
                self.probes += 1
                for n, sender in enumerate(senders):
                    mac = ":".join(f"{b:02X}" for b in [0x02, *rng.randbytes(5)])
                    info = {**self.template, "mac": mac, "deviceId": f"F{self.probes}-{n}"}
                    sender.sendto(
                        xor_encrypt(json.dumps({"system": {"get_sysinfo": info}}).encode()), addr
                    )
        finally:
            for s in senders:
                s.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()
        for s in self.watch:
            s.close()


def _fds(pid: int) -> int:
    return sum(len(os.listdir(f"/proc/{p}/fd")) for p in proctree.tree(pid))


def _window(run: OtelpowerRun, flooder: Flooder, listed: list[str], seconds: float) -> dict:
    pid = run.proc.pid
    lines_before = len(run.log_path.read_text(errors="replace").splitlines())
    flooder.probes_to_spoofed()
    cpu_before, started = proctree.cpu_s(pid), time.monotonic()
    rss = fds = body = 0.0
    oldest = 0.0
    while time.monotonic() - started < seconds:
        rss = max(rss, proctree.memory(pid).rss_mb)
        fds = max(fds, _fds(pid))
        status, data = http_get(f"{run.url}/metrics", timeout=10)
        if status == 200:
            body = max(body, len(data))
            now = time.time()
            stamps = find(parse(data.decode()), "otelpower_last_success_timestamp_seconds")
            for labels, value in stamps.items():
                if dict(labels).get("device_id") in listed:
                    oldest = max(oldest, now - value)
        time.sleep(1.0)
    cpu = (proctree.cpu_s(pid) - cpu_before) / (time.monotonic() - started) * 100
    lines = len(run.log_path.read_text(errors="replace").splitlines()) - lines_before
    return {
        "cpu_pct": cpu,
        "rss_mb": rss,
        "fds": fds,
        "log_lines": lines,
        "metrics_kb": body / 1024,
        "oldest_reading_s": oldest,
        "probes_to_spoofed": flooder.probes_to_spoofed(),
    }


UNITS = {
    "cpu_pct": "% of a core",
    "rss_mb": "MB",
    "fds": "descriptors",
    "log_lines": "lines",
    "metrics_kb": "kB",
    "oldest_reading_s": "s",
    "probes_to_spoofed": "datagrams",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=5000, help="spoofed replies per probe")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each window")
    parser.add_argument("--round", type=float, default=10.0, help="discovery.interval")
    args = parser.parse_args()
    raise_fd_limit()
    emulator = EmulatorProcess(2, profile=["p110_klap", "kp115_xor"])
    config = emulator.start()
    listed = [d["device_id"] for d in config["devices"]]
    kp115 = next(p for p in builtin_profiles() if p.stem == "kp115_xor")
    flooder = Flooder(args.replies, load_profile(kp115).sysinfo)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "otelpower.yaml"
        config["discovery"] = {"targets": [f"{NET}.0.1"], "interval": args.round, "adopt": True}
        path.write_text(yaml.safe_dump(config))
        run = OtelpowerRun(Path(tmp), path, {"OTELPOWER_LOG_LEVEL": "INFO"})
        run.start(timeout=60)
        try:
            log("waiting for both listed plugs")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ups = find(parse(http_get(f"{run.url}/metrics")[1].decode()), "tplink_native_up")
                if sum(1 for k, v in ups.items() if v == 1) >= 2:
                    break
                time.sleep(1)
            log(f"baseline window ({args.seconds:g} s)")
            base = _window(run, flooder, listed, args.seconds)
            flooder.on = True
            log(f"flood window ({args.replies} replies per probe)")
            flood = _window(run, flooder, listed, args.seconds)
            flooder.on = False
            log(f"after the flood: {args.seconds:g} s to forget (3 polls with backoff), then")
            time.sleep(args.seconds)
            after = _window(run, flooder, listed, args.seconds)
        finally:
            run.stop()
            flooder.close()
            emulator.stop()
    figures = []
    for key, unit in UNITS.items():
        figures.append(Figure(f"baseline {key}", base[key], unit))
        figures.append(Figure(f"flood {key}", flood[key], unit))
        if base[key]:
            figures.append(Figure(f"flood/baseline {key}", flood[key] / base[key], "x"))
        figures.append(Figure(f"after {key}", after[key], unit))
    figures.append(Figure("probes answered by the flood", flooder.probes, "probes"))
    print(table(figures))
    for f in figures:
        print(f.json())


if __name__ == "__main__":
    main()
