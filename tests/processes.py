"""Other processes for tests of what spikecl does while another process works on the same files."""

import contextlib
import subprocess
import sys

HOLD = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(120)")


@contextlib.contextmanager
def holding_locks(*locks):
    """A live process holding an exclusive flock on each file of ``locks`` (as a run holds ``<results>.lock``);
    yields its PID."""
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
             for lock in locks]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "held"
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def sleeping():
    """A live process that holds nothing; yields it (its PID stands for a process that is not spikecl's)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
