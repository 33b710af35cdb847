"""Split the plugs among N otelpower replicas: replica i polls the device_ids that hash to i.

Same idea as Prometheus ``hashmod`` sharding: md5 of the device_id, the last 8 bytes as a
big-endian integer, modulo N. Every replica reads the same config; the split needs no
coordination and is stable as long as N is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= i < N and N >= 1")

    def owns(self, device_id: str) -> bool:
        return shard_of(device_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(device_id: str, count: int) -> int:
    digest = hashlib.md5(device_id.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % count


def parse_shard(text: str) -> Shard:
    """``"i/N"`` (e.g. ``"0/3"``; a StatefulSet passes its pod index as i)."""
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"shard {text!r}: expected i/N, e.g. 0/3")
    return Shard(int(match[1]), int(match[2]))
