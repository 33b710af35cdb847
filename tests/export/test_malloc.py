"""glibc's mmap threshold, fixed so that large blocks go back to the system when freed."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

PROBE = """\
import ctypes, sys
from otelpower.export import malloc

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
big = bytes(8 << 20)  # freed: glibc would serve blocks up to 8 MiB from the heap from now on
del big
print(malloc.return_large_blocks())
before = libc.mallinfo2().hblks
blocks = [bytearray(1 << 20) for _ in range(4)]  # as renderings and OTLP requests at 1k plugs
print(libc.mallinfo2().hblks - before)
"""


def probe(**env: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | env,
    )
    return result.stdout.split()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc >= 2.33 only",
)
def test_large_blocks_are_mapped_of_their_own_after_larger_ones_were_freed() -> None:
    assert probe() == ["True", "4"]  # each 1 MiB block in a mapping, unmapped when freed
    assert probe(MALLOC_MMAP_THRESHOLD_="16777216") == ["False", "0"]  # the user's setting wins
