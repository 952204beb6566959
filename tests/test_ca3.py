"""CA3 content-addressable memory: spike-for-spike reproduction of the SpiNNaker recordings (Brian2 and the torch
stepper), decoding of learn / recall / forget, and one-line errors for bad input."""

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikecl.errors import ConfigError, ShapeError
from spikecl.memory import (CA3Memory, CA3Params, learn, make_schedule, recall_by_content, recall_by_cue,
                            run_batch, synapse_count)
from spikecl.memory.params import connections
from spikecl.memory.recordings import DATA_DIR, RECORDED, mismatches
from spikecl.memory.recordings import load_recording as load_spikes
from spikecl.memory.schedule import encode, events, plasticity_gate, raster_from_events

DATA = Path(__file__).parent / "data" / "ca3"
EXPERIMENTS = RECORDED


def load_recording(name):
    """(C, M, {population: {(step, neuron)}}, n_steps) of a recording."""
    spikes = load_spikes(name, DATA)
    n_steps = max(t for s in spikes.values() for t, _ in s) + 2
    return EXPERIMENTS[name][0], EXPERIMENTS[name][1], spikes, n_steps


def recorded_inputs(name):
    C, M, spikes, n_steps = load_recording(name)
    return (raster_from_events(spikes["INcue"], n_steps, C), raster_from_events(spikes["INcont"], n_steps, M))


def assert_same_spikes(recorded, simulated):
    """Every recorded population's spike set equals the simulated one; the message lists every difference."""
    diffs = mismatches(recorded, {pop: events(raster) for pop, raster in simulated.items()})
    assert not diffs, "spikes differ from the SpiNNaker recording:\n" + "\n".join(
        f"{pop}: missing {missing}, extra {extra}" for pop, (missing, extra) in diffs.items())


def test_stdp_amplitude_a_times_w_max_misses_recorded_spikes():
    """The comparison has teeth: PyNN's nominal amplitude A * w_max = 36 nA does not reproduce the recording."""
    from spikecl.memory.torch_net import TorchCA3

    C, M, recorded, _ = load_recording("exp1_functional")
    spikes = TorchCA3(CA3Params(a_plus_nA=36.0, a_minus_nA=36.0), C, M).run(*recorded_inputs("exp1_functional"))
    diffs = mismatches(recorded, {k: events(v[:, 0].numpy()) for k, v in spikes.items()})
    assert sum(len(a) + len(b) for a, b in diffs.values()) >= 5


def test_packaged_recordings_equal_the_test_data():
    for name in RECORDED:
        assert (DATA_DIR / f"{name}.json").read_bytes() == (DATA / f"{name}.json").read_bytes()


@pytest.fixture(scope="module")
def brian2_runs():
    """Both recordings driven through the Brian2 network (numpy target): name -> (spikes, weights)."""
    from spikecl.memory.brian2_net import Brian2CA3

    out = {}
    for name in EXPERIMENTS:
        C, M, _, _ = load_recording(name)
        net = Brian2CA3(CA3Params(), C, M, target="numpy")
        out[name] = (net.run(*recorded_inputs(name)), net.weights())
    return out


@pytest.mark.brian2
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_brian2_reproduces_spinnaker_recording(brian2_runs, name):
    _, _, recorded, _ = load_recording(name)
    assert sum(len(s) for p, s in recorded.items() if not p.startswith("IN")) > 100
    assert_same_spikes(recorded, brian2_runs[name][0])


@pytest.mark.brian2
@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="no C++ compiler for cpp_standalone")
def test_compiled_brian2_reproduces_the_recording_from_a_fresh_memory_on_every_run(brian2_runs, tmp_path):
    """Brian2's cpp_standalone device (compiled once, about a minute here): every run of the binary starts from an
    empty memory, so running the recorded experiment twice reproduces the recording twice, with the runtime
    network's weights; a shorter schedule runs in the same binary; close() hands Brian2 back to runtime mode."""
    from spikecl.memory.brian2_net import Brian2CA3, CompiledBrian2CA3

    C, M, recorded, n_steps = load_recording("exp1_functional")
    cue, content = recorded_inputs("exp1_functional")
    net = CompiledBrian2CA3(CA3Params(), C, M, max_steps=n_steps + 5, directory=str(tmp_path / "ca3"))
    try:
        for _ in range(2):
            assert_same_spikes(recorded, net.run(cue, content))
            for matrix, w in brian2_runs["exp1_functional"][1].items():
                np.testing.assert_allclose(net.weights()[matrix], w, rtol=1e-12, atol=1e-12)
        first_half = net.run(cue[: n_steps // 2], content[: n_steps // 2])
        assert all(r.shape[0] == n_steps // 2 for r in first_half.values())
        cut = 1 + min(t for events in recorded.values() for t, _ in events)
        net.run(cue[:cut], content[:cut])               # ends while the first learn is still spiking
        with pytest.raises(ConfigError, match="activity went on past the inputs' last step"):
            net.weights()
        with pytest.raises(ShapeError, match="T <= "):
            net.run(np.zeros((n_steps + 6, C), bool), np.zeros((n_steps + 6, M), bool))
        device, run = net._b2.device, net._b2.device.run

        def stopped_by_ctrl_c(*args, **kwargs):            # the binary's SIGINT handler stops it and exits 0
            run(*args, **kwargs)
            device._last_run_completed_fraction = 0.4

        device.run = stopped_by_ctrl_c
        try:
            with pytest.raises(KeyboardInterrupt, match="compiled Brian2 simulation stopped at 40% of its"):
                net.run(cue, content)
        finally:
            del device.run
        with pytest.raises(ConfigError, match="^a CompiledBrian2CA3 holds Brian2's device in standalone mode"):
            Brian2CA3(CA3Params(), C, M, target="numpy")      # it failed deep in Brian2: "has not been run"
    finally:
        net.close()
    with pytest.raises(ConfigError, match="^this CompiledBrian2CA3 was closed"):
        net.run(cue, content)
    assert_same_spikes(recorded, Brian2CA3(CA3Params(), C, M, target="numpy").run(cue, content))


@pytest.mark.brian2
def test_a_runtime_brian2_memory_is_refused_while_a_compiled_one_holds_the_device(monkeypatch):
    """Brian2's device is global: while a CompiledBrian2CA3 holds it in standalone mode, a runtime memory failed
    deep inside Brian2 saying the simulation had not been run."""
    from spikecl.memory import brian2_net

    monkeypatch.setitem(brian2_net.STANDALONE, "owner", object())
    with pytest.raises(ConfigError, match=r"close\(\) it before building or running another Brian2 CA3 memory$"):
        brian2_net.Brian2CA3(CA3Params(), 3, 5)


@pytest.mark.brian2
def test_brian2_memories_leave_the_process_wide_brian2_state_as_they_found_it(monkeypatch, tmp_path):
    """Brian2's codegen target and device are global to the process: a memory sets its target only while it
    builds and runs; a device set by your own code is a one-line refusal, not a traceback deep in Brian2 (nor
    replaced by a compiled memory's); Ctrl-C while a compiled memory builds leaves Brian2 in runtime mode; a compiled
    memory builds with one compiler per CPU (Brian2's own ``make -j`` started ~150), or with your make arguments."""
    import brian2 as b2
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
    from spikecl.memory import brian2_net

    monkeypatch.setitem(b2.prefs, "codegen.target", "auto")
    net = brian2_net.Brian2CA3(CA3Params(), 3, 5, target="numpy")
    net.run(np.zeros((4, 3), bool), np.zeros((4, 5), bool))
    assert b2.prefs.codegen.target == "auto" and net.t_ms == 4

    b2.set_device("cpp_standalone", build_on_run=False, directory=str(tmp_path / "yours"))
    try:
        for build in (lambda: brian2_net.Brian2CA3(CA3Params(), 3, 5), lambda: net.run(np.zeros((4, 3), bool),
                      np.zeros((4, 5), bool)), lambda: brian2_net.CompiledBrian2CA3(CA3Params(), 3, 5, 10, tmp_path)):
            with pytest.raises(ConfigError, match=r"^Brian2's device is CPPStandaloneDevice, set outside spikecl"):
                build()
        assert isinstance(b2.get_device(), CPPStandaloneDevice)             # yours, kept
    finally:
        b2.device.reinit()
        b2.set_device("runtime")

    make_args = []

    def ctrl_c(*args, **kwargs):                   # the build's make arguments, then Ctrl-C
        make_args.append(list(b2.prefs.devices.cpp_standalone.extra_make_args_unix))
        raise KeyboardInterrupt
    monkeypatch.setattr(CPPStandaloneDevice, "build", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        brian2_net.CompiledBrian2CA3(CA3Params(), 3, 5, 10, str(tmp_path / "compiled"))
    assert brian2_net.STANDALONE["owner"] is None and type(b2.get_device()).__name__ == "RuntimeDevice"
    monkeypatch.setitem(b2.prefs, "devices.cpp_standalone.extra_make_args_unix", ["-j3", "-s"])   # your own
    with pytest.raises(KeyboardInterrupt):
        brian2_net.CompiledBrian2CA3(CA3Params(), 3, 5, 10, str(tmp_path / "compiled"))
    cpus = len(os.sched_getaffinity(0))            # Brian2's own '-j' ran a compiler per source file at once
    assert make_args == [[f"-j{cpus}"], ["-j3", "-s"]]
    assert b2.prefs.devices.cpp_standalone.extra_make_args_unix == ["-j3", "-s"]
    rasters = brian2_net.Brian2CA3(CA3Params(), 3, 5).run(np.zeros((2, 3), bool), np.zeros((2, 5), bool))
    assert rasters["CA3contCond"].shape == (2, 5)
    for steps in ("100", None, 0, 2.5, True):                 # a traceback from a comparison, for the first two
        message = f"max_steps: expected a positive integer, got {steps!r}"
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            brian2_net.CompiledBrian2CA3(CA3Params(), 3, 5, steps, str(tmp_path / "compiled"))
    assert brian2_net.STANDALONE["owner"] is None and type(b2.get_device()).__name__ == "RuntimeDevice"


@pytest.mark.brian2
def test_ctrl_c_during_a_brian2_run_interrupts_it_rather_than_returning_a_cut_short_simulation():
    """Brian2's own SIGINT handler stops a running network after its step; the memory's run then raises
    KeyboardInterrupt instead of returning rasters that are silent after the stop."""
    import signal

    import brian2 as b2
    from spikecl.memory.brian2_net import Brian2CA3

    net = Brian2CA3(CA3Params(), 3, 5, target="numpy")
    calls = []

    @b2.network_operation(dt=net.dt)
    def press_ctrl_c():
        calls.append(1)
        if len(calls) == 20:                               # Ctrl-C at the 20th step of 100
            os.kill(os.getpid(), signal.SIGINT)

    net.network.add(press_ctrl_c)
    cues = np.zeros((100, 3), bool)
    cues[::4, 0] = True                                    # input spikes before and after the Ctrl-C
    with pytest.raises(KeyboardInterrupt, match=r"stopped at \d+ of 100 ms"):
        net.run(cues, np.zeros((100, 5), bool))
    assert 20 <= net.t_ms < 100
    net.network.remove(press_ctrl_c)
    quiet = net.run(np.zeros((30, 3), bool), np.zeros((30, 5), bool))        # it goes on, with its own spikes only
    assert all(r.shape == (30, net.sizes[p]) for p, r in quiet.items()) and not quiet["INcue"].any()


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_torch_stepper_reproduces_spinnaker_recording(name):
    from spikecl.memory.torch_net import TorchCA3

    C, M, recorded, _ = load_recording(name)
    net = TorchCA3(CA3Params(), C, M, batch_size=2, device="cpu")
    spikes = net.run(*recorded_inputs(name))
    for b in range(2):
        assert_same_spikes(recorded, {k: v[:, b].numpy() for k, v in spikes.items()})


@pytest.mark.brian2
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_torch_and_brian2_store_the_same_weights(brian2_runs, name):
    from spikecl.memory.torch_net import TorchCA3

    C, M, _, _ = load_recording(name)
    net = TorchCA3(CA3Params(), C, M)
    spikes = net.run(*recorded_inputs(name))
    b2_spikes, b2_weights = brian2_runs[name]
    for pop, raster in b2_spikes.items():
        np.testing.assert_array_equal(spikes[pop][:, 0].numpy(), raster, err_msg=pop)
    for key, w in net.weights().items():
        np.testing.assert_allclose(w[0], b2_weights[key], atol=1e-9, err_msg=key)
        assert w[0].max() == pytest.approx(6.0)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_schedule_encodes_the_recorded_input_spikes(name):
    C, M, ops, spacing = EXPERIMENTS[name]
    schedule = make_schedule(ops, C, M, spacing)
    cue, content = encode(schedule, C, M)
    rec_cue, rec_content = recorded_inputs(name)
    assert events(cue) == events(rec_cue) and events(content) == events(rec_content)


def test_events_shift_by_their_offset_and_rasters_refuse_spikes_outside_them():
    """events(raster, offset_ms) moves every step later by the offset; raster_from_events refuses a negative step or
    neuron (numpy would wrap it to the raster's end) as well as one past the end."""
    raster = np.zeros((4, 3), dtype=bool)
    raster[1, 2] = raster[3, 0] = True
    assert events(raster) == {(1, 2), (3, 0)} and events(raster, 10) == {(11, 2), (13, 0)}
    np.testing.assert_array_equal(raster_from_events(events(raster), 4, 3), raster)
    for spike in ((-1, 0), (0, -1), (4, 0), (0, 3)):
        with pytest.raises(ShapeError, match=re.escape(f"spike (step {spike[0]}, neuron {spike[1]}) lies outside")):
            raster_from_events([spike], 4, 3)


def test_memory_decodes_the_functional_experiment_like_the_recording():
    C, M, ops, spacing = EXPERIMENTS["exp1_functional"]
    run = CA3Memory(C, M, backend="torch").run(ops, spacing)
    answers = [(r.cues, r.bits) for r in run.results]
    assert answers == [((0,), (0, 1, 8, 9)), ((4,), (1, 5, 6)), ((3,), (4, 5, 6)),
                       ((0,), (0, 1, 8, 9)),          # recall by cue 0: its content
                       ((3, 4), (6,)),                # recall by {6}: both cues holding bit 6 (OR-matching)
                       ((0, 3), (0, 4)),              # recall by {0, 4}
                       ((3,), (1, 3, 4, 8)),          # relearn cue 3 ...
                       ((3,), (1, 3, 4, 8)),          # ... recall by cue 3 gives the new content
                       ((4,), (6,))]                  # bit 6 now belongs to cue 4 only
    assert run.results[6].forgotten == (5, 6)
    _, _, recorded, _ = load_recording("exp1_functional")
    assert_same_spikes(recorded, run.spikes)
    assert set(run.spikes) >= {"INcue", "INcont", "CA3contCondInt", "OUTcue", "OUTcont"}


@pytest.mark.brian2
@pytest.mark.slow
def test_brian2_memory_learns_recalls_and_forgets():
    mem = CA3Memory(4, 8, backend="brian2")
    assert mem.learn(2, [1, 5]).bits == (1, 5)
    assert mem.recall_by_cue(2).answer == (1, 5)
    assert mem.recall_by_content([5]).answer == (2,)
    w = mem.weights()
    assert w["cue_to_content"].shape == (4, 8) and w["content_to_cue"].shape == (8, 4)
    assert np.all(w["cue_to_content"][2, [1, 5]] == 6.0) and np.all(w["content_to_cue"][[1, 5], 2] == 6.0)
    relearn = mem.learn(2, np.array([1, 0, 0, 0, 0, 0, 0, 1], dtype=bool))
    assert relearn.bits == (0, 7) and relearn.forgotten == (1, 5)
    assert mem.recall_by_cue(2).answer == (0, 7)
    assert mem.recall_by_content([5]).answer == ()
    assert mem.t_ms == 6 * 14
    from brian2.codegen.translation import make_statements

    before = len(make_statements._cache)             # Brian2 keeps what it generates per namespace object for good
    for _ in range(5):
        assert mem.recall_by_cue(2).answer == (0, 7)
    assert len(make_statements._cache) == before     # runs of one length refill theirs: the process does not grow
    assert all(mon.num_spikes == 0 for mon in mem._net.monitors.values())  # nor keep the spikes it answered with


def test_random_memories_are_recalled_exactly_at_14_ms():
    rng = np.random.default_rng(0)
    C, M = 8, 12
    contents = [tuple(sorted(rng.choice(M, size=3, replace=False).tolist())) for _ in range(C)]
    ops = [learn(c, x) for c, x in enumerate(contents)] + [recall_by_cue(c) for c in range(C)]
    ops += [recall_by_content([b]) for b in range(M)]
    run = CA3Memory(C, M, backend="torch").run(ops)
    recalled = [r.answer for r in run.results[C:2 * C]]
    assert recalled == contents
    for b, r in enumerate(run.results[2 * C:]):
        assert set(r.answer) >= {c for c, x in enumerate(contents) if b in x}


def test_batched_memories_equal_separate_runs():
    lists = [[learn(0, [1, 2]), recall_by_cue(0)], [learn(1, [3]), learn(2, [0, 3]), recall_by_content([3])]]
    batch = run_batch(lists, 3, 4)
    assert [r.answer for r in run_batch(lists, 3, 4, workers=np.int64(1))[1].results] == \
        [r.answer for r in batch[1].results]                         # a numpy count, as check_sizes takes
    for ops, together in zip(lists, batch):
        alone = CA3Memory(3, 4, backend="torch").run(ops)
        assert [r.answer for r in together.results] == [r.answer for r in alone.results]
        for pop in alone.spikes:
            np.testing.assert_array_equal(together.spikes[pop], alone.spikes[pop])
    assert batch[0].results[1].answer == (1, 2) and batch[1].results[2].answer == (1, 2)


def test_run_batch_gives_each_memory_its_own_weights():
    """Every MemoryRun of a batch holds its own memory's plastic weights: cue 0 -> bits 1, 2 in the first, cue 1 ->
    bit 3 in the second, and neither holds the other's."""
    first, second = (run.weights["cue_to_content"] for run in run_batch([[learn(0, [1, 2])], [learn(1, [3])]], 3, 4))
    assert first[0, [1, 2]].tolist() == [6.0, 6.0] and first[1, 3] == 0.0
    assert second[1, 3] == 6.0 and second[0, [1, 2]].tolist() == [0.0, 0.0]


def test_run_batch_keeps_read_only_recall_from_learning():
    """run_batch gates plasticity off during recalls with read_only_recall, as CA3Memory does: querying bits 0 and 4
    twice leaves bit 0 unlinked from cue 3 (6 nA without the option), so bit 0 alone still answers cue 0 only."""
    ops = [learn(0, [0, 1, 8, 9]), learn(3, [4, 5, 6]), recall_by_content([0, 4]), recall_by_content([0, 4]),
           recall_by_content([0])]
    locked, published = (run_batch([ops], 5, 10, CA3Params(read_only_recall=ro))[0] for ro in (True, False))
    assert published.weights["content_to_cue"][0, 3] == 6.0 and published.results[4].answer == (0, 3)
    assert locked.weights["content_to_cue"][0, 3] < 1.0 and locked.results[4].answer == (0,)


def test_a_memory_run_starts_at_the_memorys_clock_before_it():
    """MemoryRun.start_ms is the memory's time when the call began: 0 for the first call, then the first call's
    duration (14 ms for one learn at the default spacing), while the memory's clock has moved on past it."""
    mem = CA3Memory(2, 3, backend="torch")
    first, second = mem.run([learn(0, [1])]), mem.run([recall_by_cue(0)])
    assert (first.start_ms, second.start_ms, mem.t_ms) == (0, 14, 28)
    assert second.results[0].answer == (1,)


def test_a_batch_split_over_processes_equals_one_process():
    """Five random memories on 2 worker processes (shares of 3 and 2, rasters bit-packed across): every spike,
    answer and weight equals the one-process batch's; bad worker counts are refused."""
    from spikecl.memory.stress import make_trial

    C, M = 8, 12
    lists = [make_trial(C, M, 0.3, b, queries_per_size=2).operations for b in range(5)]
    one, two = run_batch(lists, C, M), run_batch(lists, C, M, workers=2)
    for a, b in zip(one, two):
        assert [r.answer for r in a.results] == [r.answer for r in b.results]
        assert a.spikes.keys() == b.spikes.keys() and a.weights.keys() == b.weights.keys()
        for pop in a.spikes:
            np.testing.assert_array_equal(a.spikes[pop], b.spikes[pop])
        for k in a.weights:
            np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert sum(r.spikes["OUTcont"].sum() for r in two) > 0
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="workers"):
            run_batch(lists, C, M, workers=bad)
    with pytest.raises(ConfigError, match="CPU processes"):
        run_batch(lists, C, M, workers=2, device="cuda")


def test_more_workers_than_memories_run_one_memory_per_process():
    """workers = 2 for a batch of one memory: one process, no empty share (a batch of 0 memories is refused)."""
    ops = [learn(1, [2, 3]), recall_by_cue(1)]
    assert [r.answer for r in run_batch([ops], 3, 5, workers=2)[0].results] == [(2, 3), (2, 3)]


BATCH_INPUTS = """
import numpy as np


def batch_inputs():
    \"\"\"Cue and content spikes of a batch of two memories that takes two worker processes ten minutes or so: a
    second's random pattern repeated, so that making it takes no time.\"\"\"
    rng = np.random.default_rng(0)
    second = rng.random((1000, 2, 200)) < 0.01
    T = 400000
    return np.tile(second[..., :100], (T // 1000, 1, 1)), np.tile(second[..., 100:], (T // 1000, 1, 1))
"""


INTERRUPTED_BATCH = BATCH_INPUTS + """
import signal, sys
import numpy as np


def stop(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    from spikecl.memory.parallel import simulate
    from spikecl.memory.params import CA3Params

    signal.signal(signal.SIGTERM, stop)                        # as the CLI does
    cue, content = batch_inputs()
    print("start", flush=True)
    try:
        simulate(CA3Params(), 100, 100, cue, content, np.ones(cue.shape[:2]), workers=2)
    except KeyboardInterrupt:
        sys.exit(130)
"""


@pytest.mark.slow
def test_sigterm_stops_a_batch_split_over_processes_without_waiting_for_it(tmp_path):
    """A SIGTERM (a scheduler's) turned into KeyboardInterrupt stops the worker processes at once: before, the pool
    waited for the whole batch, whose work is thrown away anyway, and a grace period could run out first."""
    import signal
    import subprocess
    import sys
    import time

    from lava_support import checkout_env

    script = tmp_path / "batch.py"
    script.write_text(INTERRUPTED_BATCH)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=checkout_env())
    assert proc.stdout.readline().strip() == "start"
    time.sleep(4)                                                 # the workers have started on their shares
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=20) == 130                       # the batch itself needs ten minutes or so
    finally:
        proc.kill()


KILLED_BATCH = BATCH_INPUTS + """
import numpy as np

if __name__ == "__main__":
    from spikecl.memory.parallel import memory_pool, simulate
    from spikecl.memory.params import CA3Params

    pool = memory_pool(2)
    print(" ".join(str(pid) for pid in pool._processes), flush=True)
    cue, content = batch_inputs()
    simulate(CA3Params(), 100, 100, cue, content, np.ones(cue.shape[:2]), workers=2, pool=pool)
"""


def test_a_pool_made_on_another_thread_outlives_that_thread():
    """The kernel's stop-with-parent is tied to the thread that started a worker: a pool made on a thread that has
    ended since must still work (it is not asked for there)."""
    import threading

    from spikecl.memory.parallel import memory_pool

    made = {}
    maker = threading.Thread(target=lambda: made.setdefault("pool", memory_pool(2)))
    maker.start()
    maker.join()
    try:
        assert list(made["pool"].map(abs, [-1, -2])) == [1, 2]
    finally:
        made["pool"].shutdown()


def test_a_pool_interrupted_while_its_workers_start_stops_them(monkeypatch):
    """Ctrl-C (or a worker that fails to start) while memory_pool waits for its workers: they are stopped, not
    left running beside the interrupted caller."""
    from concurrent.futures import ProcessPoolExecutor

    from spikecl.memory import parallel

    made = []

    class Interrupted(ProcessPoolExecutor):
        def map(self, fn, *iterables, **kwargs):
            list(super().map(fn, *iterables, **kwargs))                  # the workers are up: now the Ctrl-C
            made.extend(self._processes.values())
            raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        parallel.memory_pool(2)
    assert len(made) == 2 and not any(_running(p.pid) for p in made)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from Linux's /proc")
def test_the_workers_of_a_batch_stop_when_their_parent_is_killed(tmp_path):
    """SIGKILL cannot be passed on: the kernel stops each worker when its parent dies, rather than let it finish a
    share no one will read."""
    import signal
    import subprocess
    import sys
    import time

    from lava_support import checkout_env

    script = tmp_path / "batch.py"
    script.write_text(KILLED_BATCH)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=checkout_env())
    workers = [int(pid) for pid in proc.stdout.readline().split()]
    try:
        assert len(workers) == 2 and all(map(_running, workers))
        time.sleep(3)                                                 # at work on their shares
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30                              # the batch itself needs ten minutes or so
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_running, workers))
    finally:
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_float32_stepper_reproduces_spinnaker_recording(name):
    """The faster float32 stepper still gives every recorded spike of every population, and no other."""
    import torch

    from spikecl.memory.torch_net import TorchCA3

    C, M, recorded, _ = load_recording(name)
    net = TorchCA3(CA3Params(), C, M, batch_size=2, dtype="float32")
    spikes = net.run(*recorded_inputs(name))
    assert net.state.v.dtype == torch.float32
    for b in range(2):
        assert_same_spikes(recorded, {k: v[:, b].numpy() for k, v in spikes.items()})


def test_float32_batch_equals_float64_on_random_memories():
    """Eight random 30 x 30 memories (learn, recall by cue and by content, relearn) in float32 and float64 (also
    split over two processes): the same spikes and answers; weights within float32 rounding. A bad precision is a
    one-line error."""
    from spikecl.memory.stress import make_trial

    C, M = 30, 30
    lists = [make_schedule(make_trial(C, M, density, b, queries_per_size=3).operations, C, M, 7 + 7 * (b % 2))
             for b, density in enumerate([0.1, 0.3, 0.5, 0.3] * 2)]
    reference = run_batch(lists, C, M)
    for fast in (run_batch(lists, C, M, precision="float32"), run_batch(lists, C, M, precision="float32", workers=2)):
        for a, b in zip(reference, fast):
            assert [r.answer for r in a.results] == [r.answer for r in b.results]
            for pop in a.spikes:
                np.testing.assert_array_equal(a.spikes[pop], b.spikes[pop], err_msg=pop)
            for k in a.weights:
                assert b.weights[k].dtype == np.float32
                np.testing.assert_allclose(b.weights[k], a.weights[k], atol=1e-5, err_msg=k)
    assert sum(r.spikes["OUTcont"].sum() for r in reference) > 100
    with pytest.raises(ConfigError, match="precision 'float16' is not one of float64, float32"):
        run_batch(lists, C, M, precision="float16")
    import torch

    from spikecl.memory.torch_net import TorchCA3

    for dtype in (torch.int64, torch.bool, "int64", np.int32):      # the stepper itself, from Python: a float dtype
        with pytest.raises(ConfigError, match="(dtype|precision) .* is not "):
            TorchCA3(CA3Params(), C, M, dtype=dtype)
    assert TorchCA3(CA3Params(), C, M, dtype=np.float32).state.v.dtype == torch.float32     # numpy's, as torch's
    assert TorchCA3(CA3Params(), C, M, dtype=np.dtype("float16")).state.v.dtype == torch.float16


def test_float32_run_flushes_subnormals_only_while_it_runs():
    """A float32 run on the CPU flushes subnormal floats (which decaying traces reach after a few hundred silent
    steps) and then restores the caller's mode, whichever it was."""
    import torch

    from spikecl.memory.torch_net import TorchCA3, flushed_subnormals, flushing_subnormals

    steps = np.zeros((20, 5), dtype=bool)
    for before in (False, True):
        torch.set_flush_denormal(before)
        try:
            with flushed_subnormals(True):
                assert flushing_subnormals()
            assert flushing_subnormals() == before
            TorchCA3(CA3Params(), 5, 5, dtype="float32").run(steps, steps)
            assert flushing_subnormals() == before
        finally:
            torch.set_flush_denormal(False)
    assert not flushing_subnormals()


def test_a_short_schedule_learns_nothing_in_the_padding_of_a_longer_batch_mate():
    """run_batch pads every memory to the longest schedule; STDP still pending at a memory's end (a post lag of
    5 ms) must not learn in that padding: its weights are those of the memory alone, and of Brian2."""
    from spikecl.memory.cam import run_batch

    p, ops = CA3Params(stdp_post_lag_ms=5.0), [learn(0, [1, 2])]
    alone = run_batch([ops], 5, 10, p, spacing_ms=7)[0].weights
    padded = run_batch([ops, [learn(1, [3]), recall_by_cue(1)]], 5, 10, p, spacing_ms=7)[0].weights
    brian2 = CA3Memory(5, 10, p).run(ops, 7).weights
    for key in alone:
        np.testing.assert_array_equal(padded[key], alone[key], err_msg=key)
        np.testing.assert_allclose(brian2[key], alone[key], atol=1e-12, err_msg=key)
    assert alone["cue_to_content"][0, 1] > 0 and alone["content_to_cue"][1, 0] == 0     # the lag cut it short


@pytest.mark.parametrize("params", [CA3Params(), CA3Params(read_only_recall=True, match_k=2, inhibition="pool")],
                         ids=["published", "options"])
def test_batched_stepper_gives_each_memory_its_own_spikes(params):
    """Five random memories (different contents, densities and spacings, so they fire at different steps), run
    together in chunks of two and in two runs, equal each memory run alone, bit for bit in spikes and weights."""
    from spikecl.memory.stress import make_trial
    from spikecl.memory.torch_net import TorchCA3

    C, M, B = 12, 16, 5
    schedules = [make_schedule(make_trial(C, M, (0.1, 0.3)[b % 2], b, queries_per_size=2).operations, C, M, 7 + b)
                 for b in range(B)]
    n_steps = min(s.duration_ms for s in schedules)
    cue, content = (np.stack([a[:n_steps] for a in x], 1) for x in zip(*(encode(s, C, M) for s in schedules)))
    gate = np.stack([plasticity_gate(s, params.read_only_recall)[:n_steps] for s in schedules], 1)
    batch = TorchCA3(params, C, M, batch_size=B, chunk=2)
    half = n_steps // 2
    first, second = (batch.run(cue[t], content[t], gate[t]) for t in (slice(None, half), slice(half, None)))
    for b in range(B):
        alone = TorchCA3(params, C, M)
        spikes = alone.run(cue[:, b:b + 1], content[:, b:b + 1], gate[:, b:b + 1])
        for pop, raster in spikes.items():
            together = np.concatenate([first[pop][:, b].numpy(), second[pop][:, b].numpy()])
            np.testing.assert_array_equal(together, raster[:, 0].numpy(), err_msg=f"memory {b}, {pop}")
        for key, w in alone.weights().items():
            np.testing.assert_array_equal(batch.weights()[key][b], w[0], err_msg=f"memory {b}, {key}")
    assert sum(int(first["OUTcont"][:, b].sum()) for b in range(B)) > 50


def test_synapse_count_matches_the_published_formula():
    for C, M in ((5, 10), (16, 6), (100, 100)):
        n = synapse_count(C, M)
        assert n["internal"] == 3 * C * M + 2 * C * (C - 1) + 3 * C + 6 * M
        assert n["plastic"] == 2 * C * M


def test_cue_inhibition_is_the_per_bit_weight_times_the_content_bits():
    """Both all-but-self inhibitions onto S2Cue weigh w_*_inh_per_bit_nA x M (6 nA x 10 bits = 60 nA published);
    the pooled scheme keeps that weight on its pool -> S2Cue projections."""
    for params in (CA3Params(), CA3Params(w_s1cue_s2cue_inh_per_bit_nA=2.0, w_s2cue_s2cue_inh_per_bit_nA=3.0)):
        inhibitions = {c.source: c.weight_nA for c in connections(params, 10) if c.pattern == "all_but_self"}
        assert inhibitions == {"CA3cueCueRecall": 10 * params.w_s1cue_s2cue_inh_per_bit_nA,
                               "CA3cueContRecall": 10 * params.w_s2cue_s2cue_inh_per_bit_nA}
    pooled = {c.source: c.weight_nA for c in connections(CA3Params(inhibition="pool"), 10)
              if c.sign < 0 and c.target == "CA3cueContRecall"}
    assert pooled == {"CA3cuePoolCue": 60.0, "CA3cuePoolCont": 60.0}


def _torch_ca3(*args):
    from spikecl.memory.torch_net import TorchCA3

    return TorchCA3(*args)


def _brian2_ca3(*args):
    from spikecl.memory.brian2_net import Brian2CA3

    return Brian2CA3(*args)


def _torch():
    import torch

    return torch


def _raster(steps: int, width: int, nan: bool = False) -> np.ndarray:
    """A float raster [steps, width] with a spike on every third step (a NaN in the first row with ``nan``)."""
    x = np.zeros((steps, width))
    x[::3] = 1.0
    if nan:
        x[0, 0] = np.nan
    return x


@pytest.mark.parametrize("make, message", [
    (lambda: learn(5, [0], n_cues=5, n_bits=4), "cue 5 is out of range"),
    (lambda: learn(-1, [0], n_cues=5, n_bits=4), "out of range"),
    (lambda: learn(0, [4], n_cues=5, n_bits=4), "bit 4 is out of range"),
    (lambda: learn(0, [], n_cues=5, n_bits=4), "empty"),
    (lambda: learn(0, np.zeros(3, bool), n_cues=5, n_bits=4), "shape (3,)"),
    (lambda: learn(0, [1, 1], n_cues=5, n_bits=4), "repeated"),
    (lambda: learn(0.5, [1], n_cues=5, n_bits=4), "integer"),
    (lambda: recall_by_content(np.zeros(4, bool), n_bits=4), "empty"),
    (lambda: make_schedule([learn(0, [1]), recall_by_cue(0)], 2, 2, 6), "minimum after a learn is 7 ms"),
    (lambda: make_schedule([recall_by_cue(0), recall_by_cue(0)], 2, 2, [5, 6]), "minimum after a recall by cue"),
    (lambda: make_schedule([recall_by_cue(0)], 2, 2, 6.5), "whole number"),
    (lambda: make_schedule([], 2, 2), "at least one operation"),
    (lambda: CA3Memory(5, 10, backend="torch").run(learn(0, [1])), "expected a list of operations"),
    (lambda: make_schedule(3, 2, 2), "operations: expected a list of operations"),
    (lambda: CA3Memory(0, 4), "n_cues"),
    (lambda: CA3Memory(3, 4, CA3Params(match_k=5), backend="torch"), "match_k = 5 exceeds the 4 content bits"),
    (lambda: run_batch([[learn(0, [0])]], 3, 4, CA3Params(match_k=5)), "match_k = 5 exceeds the 4 content bits"),
    (lambda: _torch_ca3(CA3Params(), 0, 10), "n_cues: expected a positive integer, got 0"),
    (lambda: _torch_ca3(CA3Params(), 2, 3).run(_raster(20, 2, nan=True), _raster(20, 3)), "cue_input: spikes are 0 "),
    (lambda: _torch_ca3(CA3Params(), 2, 3).run(_raster(20, 2), _raster(20, 3) * 0.3), "content_input: spikes are 0 or"),
    (lambda: _torch_ca3(CA3Params(), 2, 3).run(-_raster(5, 2), _raster(5, 3)), "found -1.0"),
    (lambda: _torch_ca3(CA3Params(), 2, 3).run(_raster(5, 2), _raster(5, 3), gate=np.ones(4)), "gate has shape (4,)"),
    (lambda: _torch_ca3(CA3Params(), 2, 3).run(_raster(5, 2), _raster(5, 3), gate=np.full(5, 0.5)), "gate: spikes"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 2).run(_raster(5, 2), _raster(5, 3), gate=np.ones((5, 3))),
     "gate has shape (5, 3); expected [5] or [5, 2]"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 2).run(_raster(5, 2), _raster(5, 3), gate=np.ones((5, 1, 1))),
     "gate has shape (5, 1, 1); expected [5] or [5, 2]"),
    (lambda: _brian2_ca3(CA3Params(), 2, 3).run(_raster(5, 2, nan=True), _raster(5, 3)), "cue_input: spikes are 0 "),
    (lambda: _brian2_ca3(CA3Params(read_only_recall=True), 2, 3).run(_raster(5, 2), _raster(5, 3), np.ones(3)),
     "gate has shape (3,); expected one value per step of the inputs, (5,)"),
    (lambda: CA3Memory(2, 4, backend="nest"), "backend"),
    (lambda: run_batch([], 3, 4), "run_batch needs at least one schedule"),
    (lambda: run_batch([[learn(0, [1])]], 2, 4, workers=True), "workers must be an integer >= 1, got True"),
    (lambda: CA3Memory(2, 4, backend="brian2", target="cpp_standalone"), "Brian2 target 'cpp_standalone': choose"),
    (lambda: CA3Params(dt_ms=0.5), "CA3Params.dt_ms: the model is defined at 1 ms steps, got 0.5"),
    (lambda: CA3Params(tau_syn_ms=0.0), "CA3Params.tau_syn_ms: must be > 0, got 0.0"),
    (lambda: CA3Params(tau_minus_ms=0.0), "CA3Params.tau_minus_ms: must be > 0, got 0.0"),
    (lambda: CA3Params(delay_output_ms=0.0), "delay_output_ms: delays are whole milliseconds in 1..10000, got 0.0"),
    (lambda: CA3Params(delay_output_ms=1.5), "delay_output_ms: delays are whole milliseconds in 1..10000, got 1.5"),
    (lambda: CA3Params(stdp_post_lag_ms=1.5), "CA3Params.stdp_post_lag_ms: a whole number of ms >= 0, got 1.5"),
    (lambda: CA3Params(w_plastic_init_nA=7.0), "need w_min_nA <= w_plastic_init_nA <= w_max_nA"),
    (lambda: CA3Params(learn_hold_steps=0), "CA3Params.learn_hold_steps: must be >= 1, got 0"),
    (lambda: CA3Params(match_k=-1), "CA3Params.match_k: must be >= 0, got -1"),
    (lambda: CA3Params(tau_m_slow_ms=-1.0), "tau_m_slow_ms"),
    (lambda: CA3Params(delay_output_ms=0.5), "delay_output_ms"),
    (lambda: CA3Params(inhibition="ring"), "inhibition"),
    (lambda: CA3Params(read_only_recall="no"), "read_only_recall: expected true or false, got 'no'"),
    (lambda: CA3Params(match_k=1.5), "match_k: expected a whole number"),
    (lambda: CA3Params(learn_hold_steps=2.5), "learn_hold_steps: expected a whole number"),
    (lambda: CA3Params(a_plus_nA="6"), "a_plus_nA: expected a number, got '6'"),
    (lambda: CA3Params(tau_refrac_ms=-5.0), "tau_refrac_ms: a whole number of ms >= 0"),
    (lambda: CA3Params(w_max_nA=0.0, match_k=2), "w_max_nA: match_k = 2 counts fully potentiated bits"),
    (lambda: CA3Params(w_input_nA=-6.0), "w_input_nA: weights and STDP amplitudes are magnitudes >= 0"),
    (lambda: CA3Params(w_s1cue_s2cue_inh_per_bit_nA=-6.0), "w_s1cue_s2cue_inh_per_bit_nA: weights and STDP"),
    (lambda: CA3Params(a_minus_nA=-1.0), "a_minus_nA: weights and STDP amplitudes are magnitudes >= 0"),
    (lambda: CA3Params(v_thresh_mV=-61.0), "v_thresh_mV: -61 mV is not above v_rest_mV = -60 mV"),
    (lambda: CA3Params(v_thresh_out_mV=-60.0), "v_thresh_out_mV: -60 mV is not above v_rest_mV"),
    (lambda: CA3Memory(2, 4, backend="torch", device="tpu"), "device 'tpu': not a torch device"),
    (lambda: CA3Memory(2, 4, backend="torch", device="meta"), "device 'meta': the CA3 stepper runs on \"cpu\""),
    (lambda: run_batch([[learn(0, [1])]], 2, 4, device="xpu"), "device 'xpu': the CA3 stepper runs on"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 1, "mps"), "device 'mps': the CA3 stepper runs on"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 2.5), "batch_size: expected an integer, got 2.5"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, "2"), "batch_size: expected an integer, got '2'"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 1, "cpu", None, 0), "chunk: 0 is below the minimum 1"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 1, "cpu", "bfloat16"), "precision"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 1, "cpu", _torch().bfloat16), "dtype torch.bfloat16 is not a torch "
                                                                          "float16, float32 or float64 dtype"),
    (lambda: _torch_ca3(CA3Params(), 2, 3, 1, "cpu", np.int32), "dtype torch.int32 is not a torch float16"),
    (lambda: _torch_ca3(CA3Params(), 2, 3).run(_raster(0, 2), _raster(0, 3)), "hold no time step (T = 0)"),
    (lambda: _brian2_ca3(CA3Params(), 2, 3).run(_raster(5, 2), _raster(5, 3), np.array([1, 1, 0, 1, 1])),
     "gate: these Brian2 synapses learn at every step (built without read_only_recall)"),
    (lambda: CA3Memory(2, 4, backend="torch", target="cython"), "target= applies to backend='brian2', not 'torch'"),
    (lambda: CA3Memory(2, 4, backend="brian2", device="cuda"), "device= applies to backend='torch', not 'brian2'"),
    (lambda: CA3Params(tau_refrac_ms=1.5), "tau_refrac_ms: a whole number of ms >= 0"),
    (lambda: CA3Memory(2, 4, backend="torch", spacing_ms=10 ** 12), "more than the 10000000 ms"),
    (lambda: CA3Memory(3, 4, CA3Params(learn_hold_steps=10), backend="torch").run(
        [learn(0, [0, 1]), learn(1, [2, 3])], 7), "holds its input 10 ms, longer than the 7 ms"),
])
def test_bad_input_is_a_one_line_error(make, message):
    with pytest.raises((ConfigError, ShapeError)) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_memory_rejects_bad_operations_before_simulating():
    mem = CA3Memory(3, 4, backend="torch")
    with pytest.raises(ConfigError, match="cue 3 is out of range"):
        mem.run([learn(3, [0])])
    with pytest.raises(ShapeError, match="expected \\(4,\\)"):
        mem.learn(0, np.ones(5, bool))
    one = np.zeros(6, bool)
    one[2] = True                       # a mask of the wrong width whose set bit is in range: still refused
    for ops, what in (([learn(0, one)], "content: boolean mask has shape \\(6,\\)"),
                      ([learn(0, [1]), recall_by_content(np.ones(3, bool))],
                       "fragment: boolean mask has shape \\(3,\\)")):
        with pytest.raises(ShapeError, match=what):
            mem.run(ops)
        with pytest.raises(ShapeError, match=what):
            run_batch([ops], 3, 4)
    with pytest.raises(ConfigError, match="minimum"):
        mem.run([learn(0, [0]), recall_by_cue(0)], spacing_ms=6)
    with pytest.raises(ConfigError, match=re.escape("content: repeated bit indices [0, 0, 1, 1] (a mask of zeros and "
                                                    "ones? pass it as a bool array)")):
        learn(0, np.array([0, 1, 1, 0]))
    with pytest.raises(ConfigError, match=r"repeated bit indices \[2, 2\]$"):
        learn(0, [2, 2])
    assert mem.t_ms == 0


@pytest.mark.gpu
def test_torch_stepper_on_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from spikecl.memory.torch_net import TorchCA3

    C, M, recorded, _ = load_recording("exp1_functional")
    net = TorchCA3(CA3Params(), C, M, batch_size=4, device="cuda")
    spikes = net.run(*recorded_inputs("exp1_functional"))
    assert_same_spikes(recorded, {k: v[:, 3].cpu().numpy() for k, v in spikes.items()})


def _corrupting_queries(params, backend="torch"):
    """Store two memories, query twice by a fragment spanning both, then ask for bit 0 alone."""
    mem = CA3Memory(5, 10, params, backend=backend)
    return mem.run([learn(0, [0, 1, 8, 9]), learn(3, [4, 5, 6]), recall_by_content([0, 4]),
                    recall_by_content([0, 4]), recall_by_content([0])])


def test_published_recall_by_content_is_not_read_only():
    run = _corrupting_queries(CA3Params())
    assert run.results[2].answer == (0, 3)
    assert run.weights["content_to_cue"][0, 3] == 6.0      # bit 0 now points at cue 3 too
    assert run.results[4].answer == (0, 3)                 # ... so a query by bit 0 answers cue 3 wrongly
    locked = _corrupting_queries(CA3Params(read_only_recall=True))
    assert locked.weights["content_to_cue"][0, 3] < 1.0 and locked.results[4].answer == (0,)


def test_read_only_recall_locks_both_plastic_matrices():
    params = CA3Params(read_only_recall=True)
    mem = CA3Memory(5, 10, params, backend="torch")
    mem.run([learn(0, [0, 1, 8, 9]), learn(3, [4, 5, 6])])
    before = mem.weights()
    run = mem.run([recall_by_content([0, 4]), recall_by_cue(0), recall_by_content([0]), recall_by_cue(3)])
    for key, w in mem.weights().items():
        np.testing.assert_array_equal(w, before[key], err_msg=key)
    assert [r.answer for r in run.results] == [(0, 3), (0, 1, 8, 9), (0,), (4, 5, 6)]
    relearn = mem.learn(0, [2])                            # learning still writes
    assert relearn.forgotten == (0, 1, 8, 9) and mem.recall_by_cue(0).answer == (2,)


def test_k_of_n_matching_answers_only_cues_sharing_k_bits():
    ops = [learn(0, [0, 1, 8, 9]), learn(4, [1, 5, 6]), learn(3, [4, 5, 6]),
           recall_by_content([1, 8]), recall_by_content([5, 6]), recall_by_content([1, 5, 9]), recall_by_content([6])]
    published = CA3Memory(5, 10, backend="torch").run(ops)
    k2 = CA3Memory(5, 10, CA3Params(match_k=2), backend="torch").run(ops)
    assert [r.answer for r in published.results[3:]] == [(0, 4), (3, 4), (0, 3, 4), (3, 4)]
    assert [r.answer for r in k2.results[3:]] == [(0,), (3, 4), (0, 4), ()]
    assert CA3Params(match_k=1).content_to_cue_gain == 1.0


def test_match_k_may_be_as_large_as_the_content():
    """match_k = M is allowed (only match_k > M can never answer): with M = 2 and k = 2, a fragment of both bits
    answers the cue holding both, and one bit answers nothing."""
    mem = CA3Memory(2, 2, CA3Params(match_k=2), backend="torch")
    run = mem.run([learn(0, [0, 1]), learn(1, [1]), recall_by_content([0, 1]), recall_by_content([1])])
    assert [r.answer for r in run.results] == [(0, 1), (1,), (0,), ()]


def test_pooled_inhibition_is_linear_in_cues_and_keeps_the_functional_answers():
    C, M, ops, spacing = EXPERIMENTS["exp1_functional"]
    pool = CA3Params(inhibition="pool")
    published = CA3Memory(C, M, backend="torch").run(ops, spacing)
    pooled = CA3Memory(C, M, pool, backend="torch").run(ops, spacing)
    assert [(r.cues, r.bits, r.forgotten) for r in pooled.results] == \
        [(r.cues, r.bits, r.forgotten) for r in published.results]
    static = lambda C, params=None: synapse_count(C, 10, params)["static"]  # noqa: E731
    assert static(300, pool) - 2 * static(200, pool) + static(100, pool) == 0          # linear in C
    assert static(300) - 2 * static(200) + static(100) == 4 * 100 ** 2                 # 2C(C-1) twice over
    assert static(100, pool) == 100 * 10 + 9 * 100 + 6 * 10                            # CM + 9C + 6M


@pytest.mark.brian2
@pytest.mark.slow
def test_options_run_identically_in_brian2_and_torch():
    C, M, ops, spacing = EXPERIMENTS["exp1_functional"]
    params = CA3Params(read_only_recall=True, match_k=2, inhibition="pool")
    runs = [CA3Memory(C, M, params, backend=b).run(ops, spacing) for b in ("brian2", "torch")]
    for pop in runs[0].spikes:
        np.testing.assert_array_equal(runs[0].spikes[pop], runs[1].spikes[pop], err_msg=pop)
    for key in runs[0].weights:
        np.testing.assert_allclose(runs[0].weights[key], runs[1].weights[key], atol=1e-9)


@pytest.mark.brian2
@pytest.mark.parametrize("changes", [dict(v_reset_mV=-56.0, tau_refrac_ms=3.0),
                                     dict(tau_refrac_ms=2.0, delay_plastic_ms=2.0, stdp_post_lag_ms=2.0)],
                         ids=["reset-above-threshold-refractory-3ms", "longer-plastic-delays"])
def test_torch_equals_brian2_off_the_published_timing(changes):
    """A reset above threshold (refractory cells must not spike), refractory periods of several steps and longer
    plastic delays: paths the published parameters never take."""
    C, M, ops, spacing = EXPERIMENTS["exp1_functional"]
    runs = [CA3Memory(C, M, CA3Params(**changes), backend=b).run(ops, spacing) for b in ("brian2", "torch")]
    assert sum(int(np.sum(s)) for s in runs[0].spikes.values()) > 200
    for pop in runs[0].spikes:
        np.testing.assert_array_equal(runs[0].spikes[pop], runs[1].spikes[pop], err_msg=pop)
    for key in runs[0].weights:
        np.testing.assert_allclose(runs[0].weights[key], runs[1].weights[key], atol=1e-9)


@pytest.mark.brian2
def test_brian2_follows_the_stdp_parameters_the_published_model_sets_equal():
    """tau_minus != tau_plus, a_minus != a_plus != w_max, w_min > 0 and w_plastic_init > 0 (equal or 0 in the
    published model): Brian2 learns and forgets the same weights as the torch stepper, clipped at w_min = 0.5."""
    params = CA3Params(tau_minus_ms=5.0, a_plus_nA=4.0, a_minus_nA=8.0, w_max_nA=5.0, w_min_nA=0.5,
                       w_plastic_init_nA=1.0)
    ops = [learn(0, [0, 1]), learn(0, [2]), recall_by_content([1])]
    runs = [CA3Memory(3, 4, params, backend=b).run(ops) for b in ("brian2", "torch")]
    for key in runs[0].weights:
        np.testing.assert_allclose(runs[0].weights[key], runs[1].weights[key], atol=1e-9, err_msg=key)
    assert runs[0].weights["cue_to_content"][0, 0] == pytest.approx(0.5)            # forgotten bit at w_min
    assert runs[0].weights["cue_to_content"][1, 3] == pytest.approx(1.0)            # untouched: w_plastic_init


@pytest.mark.brian2
def test_brian2_read_only_recall_stays_locked_in_a_later_call():
    """A Brian2 memory's gate is read at each call's own clock: recalling by content in a second call, after the
    first call's learns, changes neither plastic matrix, so bit 0 still answers cue 0 alone."""
    mem = CA3Memory(5, 10, CA3Params(read_only_recall=True), backend="brian2")
    mem.run([learn(0, [0, 1, 8, 9]), learn(3, [4, 5, 6])])
    before = mem.weights()
    run = mem.run([recall_by_content([0, 4]), recall_by_content([0])])
    assert [r.answer for r in run.results] == [(0, 3), (0,)]
    for key, w in mem.weights().items():
        np.testing.assert_array_equal(w, before[key], err_msg=key)


@pytest.mark.brian2
def test_brian2_read_only_synapses_learn_at_every_step_without_a_gate():
    """Brian2CA3.run(gate=None) on synapses built with read_only_recall learns as a gate of ones does (the
    documented default), not as plasticity switched off."""
    cue, content = encode(make_schedule([learn(1, [0, 2])], 2, 3, 7), 2, 3, 3)
    ungated, gated = (_brian2_ca3(CA3Params(read_only_recall=True), 2, 3) for _ in range(2))
    ungated.run(cue, content)
    gated.run(cue, content, np.ones(len(cue)))
    assert ungated.weights()["cue_to_content"][1].tolist() == [6.0, 0.0, 6.0]
    for key, w in ungated.weights().items():
        np.testing.assert_array_equal(w, gated.weights()[key], err_msg=key)


def test_cuda_without_a_gpu_is_a_one_line_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        CA3Memory(3, 4, backend="torch", device="cuda")


def test_relearning_forgets_for_recall_by_cue_only_as_documented():
    """docs/ca3.md, Limits: after relearning, the old bits keep about half their content-to-cue links, so two of them
    still answer the cue, and that query (not read-only) restores them."""
    memory = CA3Memory(5, 10, backend="torch")
    first = memory.run([learn(0, [0, 1, 2]), learn(0, [3, 4]), recall_by_cue(0)])
    assert first.results[-1].answer == (3, 4)
    kept = memory.weights()["content_to_cue"][:3, 0]
    assert np.all((kept > 3.0) & (kept < 3.3)), kept
    assert memory.run([recall_by_content([0, 1]), recall_by_content([0])]).results[-1].answer == (0,)
    assert np.allclose(memory.weights()["content_to_cue"][:2, 0], 6.0)


def test_an_interrupted_brian2_build_says_nothing_of_its_half_built_objects(monkeypatch, capfd):
    """Ctrl-C while the Brian2 network was built printed 18 multi-line 'never included in a network' warnings
    after the one-line interruption."""
    import gc

    import brian2

    from spikecl.memory.brian2_net import Brian2CA3

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(brian2, "SpikeMonitor", interrupted)     # every group and synapse made, none in a network
    with pytest.raises(KeyboardInterrupt):
        Brian2CA3(CA3Params(), 5, 10)
    gc.collect()
    assert "unused_brian_object" not in capfd.readouterr().err
