"""Memory of a run: what it peaked at, what it holds now, and giving freed memory back to the system.

glibc's malloc keeps memory that a training step freed: activations of long reviews come in ever
new sizes, the heap fragments, and resident memory creeps up with every long batch. `malloc_trim`
hands the free pages back; called once per training step it cost no measurable time in our runs,
unlike a fixed M_MMAP_THRESHOLD, which made training slower (README "Memory").
"""

import ctypes
import gc
import os
import sys
from pathlib import Path

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                libc.malloc_trim  # noqa: B018 - glibc only (musl has no malloc_trim)
                _LIBC = libc
            except (OSError, AttributeError):
                pass
    return _LIBC


def trim() -> None:
    """Return the C heap's free pages to the system (glibc; nothing elsewhere). FINETUNE_MALLOC_TRIM=0 turns it
    off, for benchmarks that measure what it saves."""
    libc = _libc() if os.environ.get("FINETUNE_MALLOC_TRIM", "1") != "0" else None
    if libc:
        libc.malloc_trim(0)


def release() -> None:
    """Between phases of a run: collect Python's garbage, then trim."""
    gc.collect()
    trim()


def peak_rss_gb() -> float:
    """The most resident memory this process has held so far (Linux reports KiB, macOS bytes)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1e9 if sys.platform == "darwin" else 1e9 / 1024), 2)


def rss_gb() -> float:
    """This process's resident memory now (Linux; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0
