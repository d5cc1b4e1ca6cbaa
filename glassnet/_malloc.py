"""Keep glibc from returning every large temporary to the OS.

glibc serves allocations of 128 KiB and more with a fresh ``mmap`` and unmaps them on free,
so every mini-batch's activations are page-faulted in anew, and a convolution's large
temporaries can spend more time in page faults than in arithmetic. Raising the mmap and trim
thresholds once lets freed blocks be reused from the heap. glibc caps the mmap threshold at
32 MB, so blocks above that (a convolution's output at batch 500 is 37 MB) would still be
mapped and faulted in anew on every call: ``M_MMAP_MAX = 0`` has the heap serve them too. The
price is that a freed block stays in the process (trimmed only above the trim threshold, at
the heap's top), so the resident size stays at its peak instead of falling back. It changes no
result, only where memory comes from.

It changes the whole process's allocator, so importing glassnet does not do it: the
``glassnet`` command and the benchmarks call ``tune_malloc()`` (``gn.tune_malloc()``) at
start, and a script that owns its process may do the same before training.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4


def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds and have the heap serve every block, for this whole
    process; returns whether it could (False, and nothing done, off glibc). Calling it again
    changes nothing further."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return (
        bool(mallopt(M_MMAP_THRESHOLD, min(threshold, 32 << 20)))
        and bool(mallopt(M_TRIM_THRESHOLD, threshold))
        and bool(mallopt(M_MMAP_MAX, 0))  # above the 32 MB cap too: the heap, not fresh maps
    )
