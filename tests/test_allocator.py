"""spikecl.allocator: freed memory is kept for the next training step instead of being faulted in again."""

import ctypes
import os
import platform
import subprocess
import sys

import pytest

from spikecl.allocator import HUGE_PAGES, ask_for_huge_pages, huge_pages_asked, keep_freed_memory, tuned_for_training

#: Allocates three 8 MB arrays (``sys.argv[3]`` float64 values each), writes them and frees them, 20 times (what a
#: training step does with its largest temporaries); prints the page faults of the last 19 rounds. ``sys.argv[1]``:
#: how the process is set up.
PROBE = """
import resource, sys
import numpy as np
setup = sys.argv[1]
if setup == "library":
    from spikecl.allocator import keep_freed_memory
    assert keep_freed_memory()
elif setup == "cli":
    from spikecl import cli
    cli.main(["report", sys.argv[2]])                      # any command: a one-line error here
def step():
    blocks = [np.ones(int(sys.argv[3])) for _ in range(3)]    # 3 x 8 MB by default, every page written
    del blocks
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(19):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_ROUND = 3 * (8 << 20) // 4096


def faults(setup: str, tmp_path, values: int = 1 << 20) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, setup, str(tmp_path / "missing.h5"), str(values)],
                          capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="not glibc: the C library's own policy stands")
def test_freed_blocks_are_reused_without_page_faults(tmp_path):
    """With glibc's default policy the freed blocks go back to the kernel and every round faults its pages in
    again; kept (by the library call or by the spikecl command line), later rounds reuse them."""
    default = faults("none", tmp_path)
    assert default > 19 * PAGES_PER_ROUND / 12, f"the probe does not exercise trimming here ({default} faults)"
    for setup in ("library", "cli"):
        assert faults(setup, tmp_path) < 19 * PAGES_PER_ROUND / 50, setup


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="not glibc: the C library's own policy stands")
def test_freed_blocks_of_more_than_32_mib_in_all_are_kept_too(tmp_path):
    """What is kept is bounded by TRIM_THRESHOLD (1 GiB), not by the 32 MiB mmap threshold: three 16 MB blocks (48 MB
    freed at once, as a CNN's [T·B, C, H, W] maps are) are reused by the next round without faulting pages in."""
    assert faults("library", tmp_path, 2 << 20) < 19 * 2 * PAGES_PER_ROUND / 50


def test_elsewhere_nothing_changes(monkeypatch):
    """Off Linux the call changes nothing and says so."""
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False


def test_a_c_library_without_mallopt_changes_nothing(monkeypatch):
    """Where libc.so.6 cannot be loaded (musl) or has no mallopt, the call changes nothing and says so."""
    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    for cdll in (missing, lambda name: object()):
        monkeypatch.setattr(ctypes, "CDLL", cdll)
        assert keep_freed_memory() is False


def test_a_benchmark_header_off_glibc_names_the_c_librarys_own_policy(monkeypatch):
    """Where the policy could not be set (off Linux), a benchmark's header says the C library's default is in effect
    and does not claim to run as the command line does, even with huge pages asked for."""
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setenv(HUGE_PAGES[0], "1")
    assert tuned_for_training() == "the C library's default, torch's huge pages asked for"


@pytest.mark.parametrize("value, asked", [(None, False), ("0", False), ("1", True)])
def test_a_benchmark_header_names_both_settings(monkeypatch, value, asked):
    """The phrase a speed benchmark prints names the C allocator's policy and whether torch was asked for huge
    pages; only both together are what the command line runs."""
    monkeypatch.delenv(HUGE_PAGES[0], raising=False)
    if value is not None:
        monkeypatch.setenv(HUGE_PAGES[0], value)
    assert huge_pages_asked() is asked
    phrase = tuned_for_training()
    assert ("huge pages asked for" in phrase) is asked and ("no huge pages" in phrase) is not asked
    glibc = platform.libc_ver()[0] == "glibc" and sys.platform.startswith("linux")
    assert ("as the spikecl CLI runs" in phrase) is (asked and glibc)


def test_asking_for_huge_pages_keeps_a_users_setting(monkeypatch):
    """ask_for_huge_pages sets THP_MEM_ALLOC_ENABLE=1 where it is unset and leaves a user's value alone."""
    monkeypatch.delenv(HUGE_PAGES[0], raising=False)
    ask_for_huge_pages()
    assert os.environ[HUGE_PAGES[0]] == "1"
    monkeypatch.setenv(HUGE_PAGES[0], "0")
    ask_for_huge_pages()
    assert os.environ[HUGE_PAGES[0]] == "0"
