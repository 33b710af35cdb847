"""A small client for the Prometheus HTTP API (VictoriaMetrics speaks it too), on urllib.

Every failure is a :class:`QueryError` whose message names the URL; callers print it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_TIMEOUT_S = 30.0
# Prometheus refuses range queries with more points than this per series.
MAX_POINTS = 11_000

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class QueryError(Exception):
    """The backend could not be asked or did not answer with data; the message says why."""


@dataclass(frozen=True)
class Series:
    """One time series: its labels (``__name__`` included when the backend kept it)."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def parse_duration(text: str) -> float:
    """``15s`` / ``1m`` / ``1.5h`` / ``500ms`` / ``30`` (seconds) -> seconds (> 0)."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 15s, 5m, 1h)")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


def parse_time(text: str, now: float | None = None) -> float:
    """``now``, ``-1h`` (relative to now), RFC 3339 or unix seconds -> unix seconds."""
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("-"):
        return now - parse_duration(text[1:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (expected now, -1h, RFC 3339 or unix seconds)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 time needs a zone (Z or +01:00): {text!r}")
    return parsed.timestamp()


def promql_str(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return json.dumps(value)


class PromClient:
    """GET /api/v1/{query,query_range,series} on ``base_url``."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: list[tuple[str, str]]) -> Any:
        url = f"{self.base_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        shown = f"{self.base_url}/api/v1/{path}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc.read())
            raise QueryError(f"{shown}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise QueryError(f"{shown}: cannot reach the backend: {reason}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise QueryError(f"{shown}: not a Prometheus API answer (no JSON)") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise QueryError(f"{shown}: query failed: {_error_detail(body)}")
        return answer.get("data")

    def query(self, expr: str, at: float) -> list[Series]:
        """Instant query at ``at``: one point per series."""
        data = self._get("query", [("query", expr), ("time", f"{at:.3f}")])
        return [
            Series(dict(item["metric"]), [_point(item["value"])])
            for item in (data or {}).get("result", [])
        ]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = [
            ("query", expr),
            ("start", f"{start:.3f}"),
            ("end", f"{end:.3f}"),
            ("step", f"{step:g}s"),
        ]
        data = self._get("query_range", params)
        return [
            Series(dict(item["metric"]), [_point(v) for v in item.get("values", [])])
            for item in (data or {}).get("result", [])
        ]

    def series(self, match: str, start: float, end: float) -> list[dict[str, str]]:
        params = [("match[]", match), ("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        return list(self._get("series", params) or [])


def _point(pair: list[Any]) -> tuple[float, float]:
    return float(pair[0]), float(pair[1])


def _error_detail(body: bytes) -> str:
    try:
        answer = json.loads(body)
        return str(answer.get("error") or answer)[:300]
    except ValueError:
        return body.decode(errors="replace").strip()[:300] or "(empty answer)"
