"""Process-wide tuning of the C allocator for training loops: freed memory stays with the process.

A training step allocates and frees the same large tensors every step: the fused engine's ``[T, B, N]`` buffers
are 2 MB each at T = 8, B = 256, N = 256. glibc serves blocks above its mmap threshold with fresh maps and returns
free memory at the top of its heap to the kernel once more than its trim threshold is free, so the next step touches
fresh pages again and faults every 4 kB page in (about 1,300-2,200 faults per step of that MLP, 1,000-6,000 at
T = 25; with torch's huge-page setting ``THP_MEM_ALLOC_ENABLE=1`` about 3,600 at both). :func:`keep_freed_memory`
raises both thresholds so that freed blocks are reused by the next step instead: a process then keeps the memory
it has freed (it gives free heap back only beyond :data:`TRIM_THRESHOLD`), which a training run needs again at its
next step. ``spikecl``'s command line sets it; a script that trains through the library calls it once.
:func:`ask_for_huge_pages` (also set by the command line) backs torch's large CPU tensors with huge pages. Imports
nothing but the standard library, so both can run before torch is imported.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks below this many bytes come from the heap (32 MiB: glibc's own ceiling for its dynamic threshold on 64-bit
#: systems, DEFAULT_MMAP_THRESHOLD_MAX; glibc 2.36 accepts larger values, which would keep larger maps too)
MMAP_THRESHOLD = 32 << 20
#: free memory at the top of the heap is kept until it exceeds this many bytes
TRIM_THRESHOLD = 1 << 30
#: Set for the process unless the user set it: torch then asks the kernel for transparent huge pages for CPU tensors
#: of 2 MB and more. A CNN's [T·B, C, H, W] maps (33 MB at T·B = 128, 64 channels, 32 × 32) exceed what the C
#: allocator recycles, so every one is fresh memory whose 4 kB page faults cost about a tenth of a training step;
#: huge pages make them 512× fewer. torch reads it once, when it is first imported (later settings do nothing).
#: Alone it makes the MLP's smaller [T, B, N] buffers fault more (about 3,600 faults per step at T = 8, B = 256),
#: which :func:`keep_freed_memory` prevents: the command line sets both.
HUGE_PAGES = ("THP_MEM_ALLOC_ENABLE", "1")


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse (thresholds :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD`)
    for the rest of the process. Returns True where that took effect (Linux with glibc), False elsewhere (other C
    libraries and systems keep their own policy; nothing changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


def ask_for_huge_pages() -> None:
    """Set :data:`HUGE_PAGES` in this process's environment unless it is set already (a user's value stands). It
    takes effect only where torch has not been imported yet."""
    os.environ.setdefault(*HUGE_PAGES)


def huge_pages_asked() -> bool:
    """Whether the environment asks torch for huge pages (:data:`HUGE_PAGES`), as the command line does."""
    return os.environ.get(HUGE_PAGES[0], "0") == HUGE_PAGES[1]


def huge_pages_phrase() -> str:
    """Whether torch was asked for huge pages, in words (for a benchmark's header)."""
    return ("torch's huge pages asked for" if huge_pages_asked()
            else f"no huge pages ({HUGE_PAGES[0]} is not {HUGE_PAGES[1]})")


def tuned_for_training() -> str:
    """:func:`keep_freed_memory`, then a phrase naming the allocator policy in effect and whether torch was asked for
    huge pages (the environment's :data:`HUGE_PAGES`; for a benchmark's header)."""
    kept = keep_freed_memory()
    policy = "freed memory kept for reuse" if kept else "the C library's default"
    same = " (as the spikecl CLI runs)" if kept and huge_pages_asked() else ""
    return f"{policy}, {huge_pages_phrase()}{same}"
