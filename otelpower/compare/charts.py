"""PNG charts with matplotlib (the optional ``report`` extra; imported only here, lazily).

Figures are built with ``matplotlib.figure.Figure`` directly: no pyplot, no global state,
no display needed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from otelpower.compare.analysis import align
from otelpower.compare.collect import DeviceData

COLORS = {"native": "#1f77b4", "matter": "#ff7f0e"}


def require_matplotlib() -> None:
    """Raise ImportError when the ``report`` extra is not installed."""
    import matplotlib

    matplotlib.use("Agg")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "device"


def _figure(width: float = 9.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _times(points: list[tuple[float, float]]) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t, _ in points]


def with_gaps(points: list[tuple[float, float]], step: float) -> list[tuple[float, float]]:
    """A NaN point into every gap longer than 1.5 steps, so lines break where data is missing."""
    out: list[tuple[float, float]] = []
    for t, v in points:
        if out and t - out[-1][0] > 1.5 * step:
            out.append((out[-1][0] + step, float("nan")))
        out.append((t, v))
    return out


def power_chart(dev: DeviceData, path: Path, step: float) -> None:
    """Power on both paths over time; samples where a path was down marked below zero."""
    fig = _figure()
    ax = fig.add_subplot()
    top = max((v for p in dev.paths.values() for _, v in p.power), default=1.0)
    ordered = sorted(dev.paths.items(), key=lambda kv: kv[0] != "native")
    for i, (protocol, data) in enumerate(ordered):
        color = COLORS.get(protocol, "gray")
        if data.power:
            power = with_gaps(data.power, step)
            ax.plot(
                _times(power),
                [v for _, v in power],
                label=f"{protocol}",
                color=color,
                linewidth=1.2,
                marker="." if len(data.power) < 80 else None,
                markersize=3,
            )
        down = [(t, v) for t, v in data.up if v < 0.5]
        if down:
            ax.scatter(
                _times(down),
                [-top * 0.04 * (i + 1)] * len(down),
                color=color,
                marker="x",
                label=f"{protocol} down (up = 0)",
                zorder=3,
            )
    ax.set_title(f"{dev.device} ({dev.device_id}): power, native vs matter")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("W")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    fig.savefig(path)


def diff_chart(dev: DeviceData, path: Path) -> None:
    """Histogram of native - matter (W) over aligned timestamps."""
    native, matter = dev.paths.get("native"), dev.paths.get("matter")
    pairs = align(native.power, matter.power) if native and matter else []
    diffs = [n - m for _, n, m in pairs]
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    if diffs:
        ax.hist(diffs, bins=min(40, max(5, len(diffs) // 3)), color="#2ca02c", alpha=0.8)
        ax.axvline(0.0, color="black", linewidth=0.8)
    else:
        ax.text(0.5, 0.5, "no aligned samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{dev.device}: native - matter ({len(diffs)} aligned samples)")
    ax.set_xlabel("W")
    ax.set_ylabel("samples")
    ax.grid(alpha=0.3)
    fig.savefig(path)


def availability_chart(
    devices: list[DeviceData], availability: dict[tuple[str, str], float | None], path: Path
) -> None:
    """Grouped bars: availability (%) per device and protocol."""
    fig = _figure(max(6.0, 1.2 * len(devices) + 3), 4.0)
    ax = fig.add_subplot()
    width = 0.38
    for i, protocol in enumerate(("native", "matter")):
        xs, ys = [], []
        for j, dev in enumerate(devices):
            value = availability.get((dev.device_id, protocol))
            if value is not None:
                xs.append(j + (i - 0.5) * width)
                ys.append(value * 100)
        bars = ax.bar(xs, ys, width, label=protocol, color=COLORS[protocol])
        ax.bar_label(bars, fmt="%.1f", fontsize="small")
    ax.set_xticks(range(len(devices)), [d.device for d in devices], rotation=20)
    ax.set_ylim(0, 110)
    ax.set_ylabel("% of samples with up = 1")
    ax.set_title("Availability per device and protocol")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path)
