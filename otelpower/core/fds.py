"""File descriptors: the process's limit, and how many sockets the readers may hold."""

from __future__ import annotations

import contextlib
import errno
import resource

#: descriptors kept out of the readers' budget: imports, logs, the /metrics process's pipe,
#: the OTLP exporter, discovery's probes (64 at a time)
RESERVE = 128

#: resources of otelpower's own host, by errno, with the remedy: a failure on one of these
#: is otelpower's, never the plug's (the readers' statuses, the event loops' handler)
OWN_LIMITS = {
    errno.EMFILE: "too many open files (raise ulimit -n / systemd LimitNOFILE, or lower"
    " poll.concurrency)",
    errno.ENFILE: "too many open files on the system",
    errno.ENOBUFS: "no network buffers left",
    errno.ENOMEM: "out of memory",
}


def fd_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one (as Go programs do); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def socket_budget() -> int:
    """Sockets a reader may hold at once (polls in flight, idle links, probes): half of what
    the limit leaves after RESERVE (the other half is /metrics' and the rest's)."""
    return max(16, (fd_limit() - RESERVE) // 2)
