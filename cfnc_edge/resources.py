"""What a process has used: the one peak-memory measurement that training
records, benchmarks report and `bench` puts in its table."""

from __future__ import annotations

import resource


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
