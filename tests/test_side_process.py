"""Side processes (the Lava runner, the CA3 and HLOP learning graphs) stop with everything they started: an
interrupted or timed-out ``run_side`` leaves no process of its group behind (Lava's runtime processes and
multiprocessing's resource tracker outlived an interrupted ``spikecl deploy`` before)."""

import os
import sys
import time

import pytest

from spikecl.errors import ResultsError
from spikecl.export import lava_client

#: a side process that starts a grandchild (as Lava's runtime does), says both PIDs and waits
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(f"{child.pid}")
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:                 # a zombie awaiting its (gone) parent counts as ended
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _grandchild(path) -> int:
    for _ in range(200):
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError("the side process did not start its child")


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("how", ["timeout", "interrupt"])
def test_a_stopped_side_process_takes_the_processes_it_started_with_it(tmp_path, monkeypatch, how):
    """The interruption is raised where Ctrl-C would land, in the wait for the side process (a real SIGINT would
    meet whatever handler the suite's other tests left, e.g. Brian2's)."""
    import subprocess

    monkeypatch.setattr(lava_client, "SIDE_GRACE_S", 1.0, raising=False)
    said = tmp_path / "pid"
    communicate = subprocess.Popen.communicate

    def interrupted(self, input=None, timeout=None):
        if timeout is None:                                      # stop_group's: the real one
            return communicate(self, input)
        _grandchild(said)                                        # once the side process has started its child
        raise KeyboardInterrupt if how == "interrupt" else subprocess.TimeoutExpired(self.args, timeout)

    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    cmd = [sys.executable, "-c", PARENT, str(said)]
    if how == "timeout":
        with pytest.raises(ResultsError, match=r"^the test side did not finish within 3 s and was stopped; retry$"):
            lava_client.run_side(cmd, "the test side", 3.0, "retry")
    else:
        with pytest.raises(KeyboardInterrupt):
            lava_client.run_side(cmd, "the test side", 60.0, "retry")
    grandchild = _grandchild(said)
    for _ in range(50):
        if not _alive(grandchild):
            break
        time.sleep(0.1)
    assert not _alive(grandchild), "the side process's child outlived it"
