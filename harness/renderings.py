"""A /metrics rendering of about 1,000 plugs' worth (~1 MB), for endpoint tests and bench."""

from __future__ import annotations

import gzip
import time

from otelpower.export.exposition import Rendering

BODY = b"".join(
    b'tplink_native_power_watts{device="plug-%d",device_id="48:22:54:00:%02x:%02x"} %d.5\n'
    % (i, i // 256 % 256, i % 256, i)
    for i in range(12_000)
)
_GZIPPED = gzip.compress(BODY, 1)


def rendering(seq: int = 1) -> Rendering:
    """BODY as rendered now."""
    return Rendering(BODY, _GZIPPED, time.time(), 0.01, seq)
