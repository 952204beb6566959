"""Data-parallel training (gloo, CPU): a 2-process run with global batch B learns what the 1-process run with batch
B learns — the same HLOP lateral subspaces, GPM bases, EWC Fisher, SI importances, replay buffers, weights and
accuracy matrix, to float32 rounding — and a killed 2-process run resumes from its checkpoint."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spikecl import launcher
from spikecl.config import experiment_from_dict
from spikecl.continual import distributed
from spikecl.run_files import checkpoint_path
from spikecl.continual.results import read_continual
from spikecl.continual.runner import ContinualRun
from spikecl.errors import ConfigError, interrupt, watch_interrupts

METHODS = ["hlop", "gpm", "ewc", "si", "replay"]
SMALL = {
    "name": "dp", "seeds": [0],
    "data": {"dataset": "digits"},
    "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 3, "train_per_task": 351},
    "network": {"hidden": [32], "num_steps": 4},
    # 6 optimiser steps per task: 5 batches split 35/35, then one sample (351 = 5·70 + 1), which leaves rank 1 an
    # empty shard (it computes on a placeholder sample with weight 0)
    "train": {"epochs": 1, "batch_size": 70, "lr": 0.1, "eval_every": 3, "eval_samples": 101},
    "strategy": {"methods": METHODS, "gpm": {"samples": 101},
                 "hlop": {"neurons": [[20, 10], [10]], "step": "normalised", "step_rows": 1, "orthonormalize": True},
                 "ewc": {"fisher_samples": 51, "lam": 10.0}, "replay": {"per_class": 3, "batch_size": 11}},
}


# task-incremental split digits (one readout head per task: heads without samples get no gradient), online
# trace-based training, and two strategies combined
TASK_IL_ONLINE = {**SMALL, "name": "dp-til", "stream": {"kind": "split", "scenario": "task", "n_tasks": 3,
                                                          "classes_per_task": 3},
                  "train": {**SMALL["train"], "trainer": "online", "batch_size": 50},
                  "strategy": {"gpm": {"samples": 51}, "replay": {"per_class": 3, "batch_size": 7}}}
# shares of a batch (36 and 35 samples) on either side of the first layer's width (36): one process alone would
# compute that layer's gradient from projected inputs, and every process must still apply the same projection
UNEVEN = {**SMALL, "name": "dp-uneven", "network": {"hidden": [36], "num_steps": 4},
          "train": {**SMALL["train"], "batch_size": 71}}
# Poisson input: the Fisher pass (51 samples: shares of 26 and 25) and the activity pass draw each sample's spikes
# from a generator of (seed, task, 0, pass), as one process does, so neither the process count nor a resume (rank 0's
# global generator restored on every rank) changes them
POISSON = {**SMALL, "name": "dp-poisson", "network": {**SMALL["network"], "encoder": "poisson"}}
CASES = {**{m: (SMALL, m) for m in METHODS}, "task-il": (TASK_IL_ONLINE, "gpm+replay"), "uneven": (UNEVEN, "gpm"),
         "poisson": (POISSON, "ewc+gpm")}


def _config(output_dir, raw=SMALL, device="cpu"):
    return experiment_from_dict({**raw, "output_dir": str(output_dir), "device": device})


def _run_and_keep_state(output_dir: str, device: str = "cpu", cases: tuple = tuple(CASES)) -> int:
    """Every case as a data-parallel run; rank 0 writes the results and the strategies' final states."""
    from spikecl.continual.data_parallel import DataParallel

    with distributed.session(device) as world:
        assert world == 2
        for case in cases:
            raw, method = CASES[case]
            cfg = _config(output_dir, raw, device)
            run = ContinualRun(cfg, method, 0, execution=DataParallel())
            run.execute(cfg.results_path(method, 0), progress_bar=False)
            if distributed.is_main():
                torch.save(run.strategy.state_dict(), f"{output_dir}/{case}-state.pt")
    return 0


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """{case: (1-process run, 2-process results, 2-process strategy state)}."""
    one_dir, two_dir = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    assert launcher.launch(2, _run_and_keep_state, str(two_dir)) == 0
    out = {}
    for case, (raw, method) in CASES.items():
        run = ContinualRun(_config(one_dir, raw), method, 0)
        run.execute(progress_bar=False)
        two = read_continual(_config(two_dir, raw).results_path(method, 0))
        out[case] = (run, two, torch.load(two_dir / f"{case}-state.pt"))
    return out


def _assert_same_run(run, two, learned=0.2):
    one = run.result()
    np.testing.assert_allclose(two.acc_matrix, one.acc_matrix, atol=1e-6)
    np.testing.assert_allclose(two.curve_accuracy, one.curve_accuracy, atol=1e-6)
    for name, value in one.model.items():
        np.testing.assert_allclose(two.model[name], value, atol=2e-5, err_msg=name)
    assert two.acc_matrix[1:].max() > learned             # it learned something (chance: 0.1; 6 steps a task)


def _principal_angle_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosines of the principal angles between the row spaces of ``a`` and ``b``."""
    qa, qb = (torch.linalg.qr(m.T.double())[0] for m in (a, b))
    return torch.linalg.svdvals(qa.T @ qb)


@pytest.mark.slow
def test_hlop_two_processes_learn_the_same_lateral_subspace(one_and_two):
    run, two, state = one_and_two["hlop"]
    _assert_same_run(run, two)
    for name, h in run.strategy.h_old.items():
        assert h.shape == state["h_old"][name].shape and h.shape[0] > 0
        torch.testing.assert_close(state["h_old"][name], h, atol=2e-5, rtol=0)
        cosines = _principal_angle_cosines(h, state["h_old"][name])
        assert cosines.min() > 1 - 1e-6, name                  # principal angles ~ 0
    np.testing.assert_array_equal(two.extra["subspace_dims"], run.result().extra["subspace_dims"])
    # the subspace was learned, not just initialised: task 0's 20 input-layer neurons capture most input energy
    from spikecl.continual.strategies.hlop import orthonormal_rows

    x = run.train_sets[0].x.flatten(1)
    learned = orthonormal_rows(state["h_old"]["layers.0"][:20])
    assert ((x @ learned.T) ** 2).sum() / (x ** 2).sum() > 0.6             # measured 0.74; random 20-d: ~0.32


@pytest.mark.slow
def test_gpm_two_processes_learn_the_same_bases(one_and_two):
    run, two, state = one_and_two["gpm"]
    _assert_same_run(run, two)
    for name, basis in run.strategy.bases.items():
        other = state["bases"][name]
        assert basis.shape == other.shape and basis.shape[0] > 0
        torch.testing.assert_close(other.T @ other, basis.T @ basis, atol=1e-5, rtol=0)   # same projector


@pytest.mark.slow
def test_shares_on_either_side_of_a_layers_width_are_projected_alike(one_and_two):
    run, two, state = one_and_two["uneven"]
    _assert_same_run(run, two, learned=0.25)                           # 5 steps of a 36-neuron layer: 0.27
    assert two.acc_matrix[3, 0] > two.acc_matrix[1, 0] - 0.05         # task 0 kept (row 0: before training)
    for name, basis in run.strategy.bases.items():
        torch.testing.assert_close(state["bases"][name].T @ state["bases"][name], basis.T @ basis, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_ewc_si_replay_two_processes_match_one(one_and_two):
    ewc, ewc_two, ewc_state = one_and_two["ewc"]
    _assert_same_run(ewc, ewc_two)
    for name, f in ewc.strategy.fisher.items():
        assert f.abs().sum() > 0
        torch.testing.assert_close(ewc_state["fisher"][name], f, rtol=1e-3, atol=1e-6 * f.abs().max().item())
    si, si_two, si_state = one_and_two["si"]
    _assert_same_run(si, si_two)
    for name, omega in si.strategy.omega.items():
        torch.testing.assert_close(si_state["omega"][name], omega, rtol=1e-3, atol=1e-7)
    replay, replay_two, replay_state = one_and_two["replay"]
    _assert_same_run(replay, replay_two)
    np.testing.assert_array_equal(replay_state["buffer"]["y"].numpy(), replay.strategy.buffer.y.numpy())


@pytest.mark.slow
def test_poisson_consolidation_passes_match_one_process_on_unequal_shares(one_and_two):
    run, two, state = one_and_two["poisson"]
    _assert_same_run(run, two, learned=0.15)             # Poisson input at T = 4 learns less in one epoch
    for name, f in run.strategy.parts[0].fisher.items():
        torch.testing.assert_close(state["ewc"]["fisher"][name], f, rtol=1e-3, atol=1e-6 * f.abs().max().item())


def test_task_incremental_online_combined_strategies_match_one_process(one_and_two):
    run, two, state = one_and_two["task-il"]
    assert len(run.net.readout.heads) == 3
    _assert_same_run(run, two)
    for name, basis in run.strategy.parts[0].bases.items():
        other = state["gpm"]["bases"][name]
        torch.testing.assert_close(other.T @ other, basis.T @ basis, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(state["replay"]["buffer"]["y"].numpy(), run.strategy.parts[1].buffer.y.numpy())


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpus_nccl_match_one_gpu(tmp_path):
    assert launcher.launch(2, _run_and_keep_state, str(tmp_path / "two"), "cuda", ("hlop", "task-il")) == 0
    for case in ("hlop", "task-il"):
        raw, method = CASES[case]
        run = ContinualRun(_config(tmp_path / "one", raw, "cuda"), method, 0)
        run.execute(progress_bar=False)
        _assert_same_run(run, read_continual(_config(tmp_path / "two", raw, "cuda").results_path(method, 0)))


def test_shards_cover_a_batch_in_order():
    assert distributed.shard_sizes(70, 2) == [35, 35]
    assert distributed.shard_sizes(5, 3) == [2, 2, 1]
    assert distributed.shard_sizes(1, 2) == [1, 0]
    assert [distributed.shard_bounds(5, 3, r) for r in range(3)] == [(0, 2), (2, 4), (4, 5)]
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.local_slice(7) == slice(0, 7)       # a single process keeps the whole batch


def test_nproc_must_be_positive(tmp_path, capsys):
    from spikecl.cli import main

    exp = tmp_path / "e.toml"
    exp.write_text('[data]\ndataset = "digits"\n')
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(exp), "--nproc", "0"])
    assert exit_.value.code == 2
    assert "argument --nproc: expected a number of processes (at most 4 per CPU) from 1 to" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_two_process_run_resumes_from_its_checkpoint(tmp_path, one_and_two):
    """SIGKILL a ``--nproc 2`` run (all its processes) after its first checkpoint; resumed by two processes
    started the way torchrun starts them (environment variables), it continues from the checkpoint and ends where
    an uninterrupted 1-process run ends."""
    raw = {**SMALL, "name": "killed", "strategy": {"methods": ["hlop"], "hlop": SMALL["strategy"]["hlop"]}}
    exp = tmp_path / "killed.toml"
    exp.write_text(_toml(raw))
    base = [sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots",
            "--output-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(base + ["--nproc", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    results = tmp_path / "killed" / "hlop-seed0.h5"
    ckpt = checkpoint_path(results)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in time"
    os.killpg(proc.pid, signal.SIGKILL)                   # the launcher and both training processes
    proc.wait()
    assert not results.exists()
    saved = torch.load(ckpt, weights_only=False)["progress"]
    assert 1 <= saved["next_task"] < 3
    torchrun = {**env, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(launcher.free_port())}
    ranks = [subprocess.Popen(base + ["--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**torchrun, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    outputs = [p.communicate(timeout=300) for p in ranks]
    assert [p.returncode for p in ranks] == [0, 0], outputs
    assert "hlop" in outputs[0][0] and outputs[1][0] == ""          # only rank 0 reports
    two = read_continual(results)
    np.testing.assert_array_equal(two.task_seconds[:saved["next_task"]], saved["task_seconds"])  # not re-trained
    one = one_and_two["hlop"][0].result()                 # the same experiment in one process, uninterrupted
    np.testing.assert_allclose(two.acc_matrix, one.acc_matrix, atol=1e-6)
    for name, value in one.model.items():
        np.testing.assert_allclose(two.model[name], value, atol=2e-5, err_msg=name)
    assert not ckpt.exists()


def _toml(raw: dict, prefix: str = "") -> str:
    """A nested dict of scalars and lists as TOML (enough for experiment files)."""
    import json

    scalars = [f"{k} = {json.dumps(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    tables = [f"\n[{prefix}{k}]\n" + _toml(v, f"{prefix}{k}.") for k, v in raw.items() if isinstance(v, dict)]
    return "\n".join(scalars) + "\n" + "".join(tables)


def _imports(path) -> set[str]:
    """Every module a source file imports, at any depth (lazy imports inside functions included)."""
    import ast

    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def test_execution_is_injected_not_imported():
    """The run and its strategies never import the process group or the data-parallel execution (it is injected),
    and the data-parallel execution does not import the run: no cycle, no override of the run's methods."""
    from pathlib import Path

    import spikecl.continual as continual

    root = Path(continual.__file__).parent
    group = {"spikecl.continual.distributed", "spikecl.continual.data_parallel"}
    for path in [root / "strategy.py", root / "projection.py", root / "execution.py",
                 *(root / "strategies").glob("*.py")]:
        assert not _imports(path) & group, path.name
    assert "spikecl.continual.runner" not in _imports(root / "data_parallel.py")
    assert "spikecl.continual.runner" not in _imports(root / "execution.py")


NAN_ON_RANK_1 = '''
import os
from spikecl.continual.strategy import Strategy
from spikecl.continual.strategies import register


class NanOnRank1(Strategy):
    """A penalty that is NaN on the second process alone, at its third step of the second task."""
    name = "nan-rank-1"
    supports_data_parallel = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.task = 0, 0

    def before_task(self, task, train, seen):
        self.task = task
        return super().before_task(task, train, seen)

    def penalty(self):
        self.calls += self.task == 1
        if os.environ.get("RANK") == "1" and self.calls == 3:
            return next(self.model.parameters()).sum() * float("nan")


register("nan-rank-1", NanOnRank1)
'''


def test_a_divergence_in_one_process_stops_every_process(tmp_path):
    """Each process checks its own shard's loss: a NaN on one rank alone stops the run in one line (the launcher
    ends the other), rather than leaving the other waiting in an all-reduce for ever; its checkpoint is recorded as
    that of a run that diverged, as in one process."""
    plugin = tmp_path / "nan_rank_1.py"
    plugin.write_text(NAN_ON_RANK_1)
    exp = tmp_path / "nan.toml"
    exp.write_text(_toml({**SMALL, "name": "nan", "strategy": {"methods": ["nan-rank-1", "finetune"]}}))
    proc = subprocess.run([sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots",
                           "--output-dir", str(tmp_path), "--nproc", "2", "--plugin", str(plugin)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0
    assert "nan-rank-1 seed 0, task 2: training loss became NaN or infinite" in proc.stderr
    assert "this stops every process" in proc.stderr and "Traceback" not in proc.stderr
    record = json.loads((tmp_path / "nan" / "nan-rank-1-seed0.h5.diverged").read_text())
    assert record["error"].startswith("nan-rank-1 seed 0, task 2: training loss became NaN or infinite")


def test_an_error_of_every_process_is_said_once(tmp_path):
    """A damaged dataset fails every rank alike: the launcher prints it once, on one line, not once per rank with
    the lines run together. A missing one is refused before any process starts."""
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (damaged / name).write_bytes(b"not an IDX file")
    for folder, said in ((damaged, "not an IDX file"), (tmp_path / "no", "mnist not found under")):
        exp = tmp_path / "nodata.toml"
        exp.write_text(_toml({**SMALL, "name": "nodata", "data": {"dataset": "mnist", "data_dir": str(folder)}}))
        proc = subprocess.run([sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots",
                               "--output-dir", str(tmp_path), "--nproc", "2"], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 2 and proc.stderr.count(said) == 1, proc.stderr
        assert proc.stderr.strip().count("\n") == 0
        assert proc.stderr.startswith("spikecl: error (rank" if folder == damaged else "spikecl: error: mnist")


def _sleep_long(folder: str | None = None) -> int:      # a training process that would outlive the launcher
    time.sleep(120)
    if folder is not None:                              # it was not stopped: it says so
        Path(folder, f"finished-{os.environ.get('RANK', '?')}").write_text("")
    return 0


def _record_exit_handlers(folder: str) -> int:
    """A training process that writes, as it exits, what a stop signal would do then."""
    import atexit

    def record():
        handlers = [signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)]
        names = ["default" if h == signal.SIG_DFL else getattr(h, "__name__", str(h)) for h in handlers]
        Path(folder, f"{os.environ['RANK']}.txt").write_text(" ".join(names))
    atexit.register(record)
    return 0


def test_a_training_process_that_finished_ends_at_once_on_a_stop_signal(tmp_path):
    """A worker's SIGTERM handler raised KeyboardInterrupt in an atexit callback when the launcher was killed as the
    worker shut down (a traceback after "nothing lost"); once its work is done, the signals take their default."""
    assert launcher.launch(2, _record_exit_handlers, str(tmp_path), threads=1) == 0
    assert sorted(p.read_text() for p in tmp_path.glob("*.txt")) == ["default default"] * 2


def _interruptible():
    """Child setup of a launcher started as from a terminal: SIGINT raises KeyboardInterrupt even where the suite
    runs in the background of a shell, which makes its children ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupt_of_the_launcher_alone_stops_its_processes():
    """``kill -INT`` of the launcher (a scheduler's signal, ``timeout -s INT``) reaches only it: the training
    processes are interrupted too, not left to finish and write results after "interrupted"."""
    import multiprocessing

    processes = [multiprocessing.get_context("spawn").Process(target=_sleep_long) for _ in range(2)]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)    # as from a terminal (see _interruptible)
    try:
        for process in processes:
            process.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    with pytest.raises(KeyboardInterrupt):
        with launcher.stopped_on_interrupt(processes, grace_s=20):
            raise KeyboardInterrupt
    assert not any(p.is_alive() for p in processes)
    assert [p.exitcode for p in processes] != [0, 0]                # stopped, not ended by their own return


def test_a_stop_the_launcher_swallowed_stops_its_processes(tmp_path):
    """A stop signal whose KeyboardInterrupt CPython swallowed in the launcher (in an import lock's callback) let
    every training process run to its end; the launcher now looks for it while it waits and stops them."""
    watch_interrupts(True)
    try:
        try:
            interrupt(signal.SIGINT, None)
        except KeyboardInterrupt:                         # swallowed
            pass
        with pytest.raises(KeyboardInterrupt):
            launcher.launch(2, _sleep_long, str(tmp_path), threads=1)
    finally:
        watch_interrupts(False)
    assert not list(tmp_path.glob("finished-*"))          # stopped, not run to their end


def test_a_launcher_interrupted_alone_writes_no_results_after_it(tmp_path):
    raw = {**SMALL, "name": "cut", "strategy": {"methods": ["finetune", "ewc"]}}
    exp = tmp_path / "cut.toml"
    exp.write_text(_toml(raw))
    proc = subprocess.Popen([sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots",
                             "--output-dir", str(tmp_path), "--nproc", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            preexec_fn=_interruptible)
    ckpt = checkpoint_path(tmp_path / "cut" / "finetune-seed0.h5")
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in time"
    os.kill(proc.pid, signal.SIGINT)                      # the launcher only
    assert proc.wait(timeout=60) == 130
    assert "interrupted; continue with --resume" in proc.stderr.read().decode()
    time.sleep(2)
    assert not list((tmp_path / "cut").glob("*.h5"))      # no training process went on to write results


def _killed_if_rank_1(folder: str) -> int:              # a training process the OOM killer takes
    if os.environ["RANK"] == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return _sleep_long(folder)


def test_a_training_process_killed_by_a_signal_is_named_in_one_line(capsys, tmp_path):
    """A process killed from outside leaves no error of its own: the launcher names it and its signal, and says
    how to continue, instead of ending silently."""
    assert launcher.launch(2, _killed_if_rank_1, str(tmp_path), threads=1) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("spikecl")]
    assert len(err) == 1 and re.match(r"spikecl: error: training process 1 \(pid \d+\) was killed by SIGKILL; "
                                      r"what finished is kept: run again with --resume to continue$", err[0]), err
    assert not list(tmp_path.glob("finished-*"))          # the other process was stopped, not waited for


def _interrupted_if_rank_1():                            # a scheduler's TERM to one training process
    if os.environ["RANK"] == "1":
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(600)
    return 0


def test_a_training_process_interrupted_alone_is_named_with_how_to_continue(capsys):
    """SIGTERM (or SIGINT) to one training process, not to the launcher: exit 130 as for Ctrl-C, and a line saying
    which process stopped and that --resume continues, rather than no word at all."""
    assert launcher.launch(2, _interrupted_if_rank_1, threads=1) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("spikecl")]
    assert len(err) == 1 and re.match(r"spikecl: training process 1 \(pid \d+\) was interrupted; what finished is "
                                      r"kept: run again with --resume to continue$", err[0]), err


def test_under_torchrun_a_plan_that_cannot_train_data_parallel_is_refused_before_any_job(tmp_path, monkeypatch):
    """Started by torchrun (WORLD_SIZE > 1), the plan's checks are those of ``--nproc``: a variant that compiles is
    refused before the first method trains, not when its own job comes up."""
    from spikecl.continual.experiment import KIND
    from spikecl.experiment_kind import preflight

    cfg = experiment_from_dict({**SMALL, "output_dir": str(tmp_path), "strategy": {"methods": ["finetune", "fast"]},
                                "variants": {"fast": {"method": "finetune", "train": {"compile": True}}}})
    assert len(preflight(KIND, cfg)[1]) == 2                       # one process: both jobs planned
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"train.compile: not supported in data-parallel runs \(fast\)"):
        preflight(KIND, cfg)
    from spikecl.memory.experiment import KIND as CA3
    from spikecl.memory.experiment import load_config

    ca3 = load_config(Path(__file__).resolve().parents[1] / "models" / "ca3_cam.toml")
    with pytest.raises(ConfigError, match=r"^WORLD_SIZE=2 \(torchrun, or a leftover export\): 'ca3' experiments do "
                                          r"not train data-parallel; run them in one process$"):
        preflight(CA3, ca3)


def test_a_world_size_without_the_rest_of_torchruns_environment_is_one_line(monkeypatch):
    """WORLD_SIZE alone (a leftover export) names what is missing instead of torch's traceback."""
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="^WORLD_SIZE=2 but RANK, MASTER_ADDR, MASTER_PORT not set: start the "):
        with distributed.session("cpu"):
            pass


@pytest.mark.parametrize("value, message", [("abc", r"^RANK='abc' is not an integer$"),
                                            ("5", r"^RANK='5' is not a rank of WORLD_SIZE=2 \(0..1\)$"),
                                            ("-1", r"^RANK='-1' is not a rank of WORLD_SIZE=2 \(0..1\)$")])
def test_a_rank_outside_the_launch_is_one_line_before_torch_waits_for_it(monkeypatch, value, message):
    """RANK=abc was torch's traceback from its rendezvous; RANK=5 of 2 waited there for ever (deaf to SIGTERM)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29555")
    with pytest.raises(ConfigError, match=message):
        with distributed.session("cpu"):
            pass
    assert not torch.distributed.is_initialized()


def test_a_refused_overwrite_leaves_the_checkpoint_of_the_run_writing_there(tmp_path):
    """--nproc 2 --overwrite of a job another run is writing (it holds the results file's lock) is refused by rank
    0, and no rank removes that run's checkpoint."""
    from spikecl.atomic import output_lock

    exp = tmp_path / "dp.toml"
    exp.write_text(_toml({**SMALL, "strategy": {**SMALL["strategy"], "methods": ["ewc"]}}))
    folder = tmp_path / "dp"
    folder.mkdir()
    checkpoint = folder / "ewc-seed0.ckpt"
    checkpoint.write_bytes(b"the other run's latest checkpoint")
    with output_lock(folder / "ewc-seed0.h5"):
        proc = subprocess.run([sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots",
                               "--output-dir", str(tmp_path), "--nproc", "2", "--overwrite"], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2 and "is writing" in proc.stderr, proc.stderr
    assert checkpoint.read_bytes() == b"the other run's latest checkpoint"


def test_a_leftover_rank_leaves_a_single_process_its_report(tmp_path, monkeypatch, capsys):
    """RANK=1 from an earlier shell (no WORLD_SIZE): the run wrote its results but printed and plotted nothing, as a
    process of rank 1 would; a RANK that is no integer was a traceback."""
    from spikecl.cli import main
    from spikecl.continual import distributed

    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.rank() == 0 and distributed.is_main()
    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny"\nseeds = [0]\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\n'
                      'scenario = "task"\nn_tasks = 2\nclasses_per_task = 5\n[network]\nhidden = [16]\n[train]\n'
                      'epochs = 1\neval_every = 0\n[strategy]\nmethods = ["finetune"]\n')
    assert main(["run", str(config), "--output-dir", str(tmp_path), "--no-progress"]) == 0
    assert "finetune" in capsys.readouterr().out and (tmp_path / "tiny" / "comparison.png").exists()
    monkeypatch.setenv("RANK", "abc")
    assert distributed.rank() == 0                                  # one process: RANK is not read
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"^RANK='abc' is not an integer$"):
        distributed.rank()


def test_a_sweep_refuses_a_world_size_its_ray_workers_would_inherit(sweep_files, monkeypatch, capsys):
    from spikecl.cli import main
    from test_sweep import BASE, RUNS

    monkeypatch.setenv("WORLD_SIZE", "2")
    path = sweep_files(BASE, RUNS)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == ("spikecl: error: WORLD_SIZE=2 (torchrun, or a leftover export): a "
                                               "sweep trains each run in one process on Ray's workers; unset "
                                               "WORLD_SIZE")
    monkeypatch.setenv("WORLD_SIZE", "")                        # every worker would refuse it, one run at a time
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == "spikecl: error: WORLD_SIZE='' is not an integer"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["sweep", str(path), "--dry-run"]) == 0


def _raises_if_rank_1():                                 # a training process that fails with a traceback
    if os.environ["RANK"] == "1":
        raise RuntimeError("rank 1 failed")
    time.sleep(600)
    return 0


def test_a_failed_launch_leaves_no_traceback_files_of_torchs_behind(tmp_path, monkeypatch, capsys):
    """torch writes each failed process's traceback to a pytorch-errorfile-*.pickle of its own in the temporary
    folder and never removes it; the launcher, having said the error, removes them."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert launcher.launch(2, _raises_if_rank_1, threads=1) == 1
    assert "rank 1 failed" in capsys.readouterr().err
    assert not list(tmp_path.glob("pytorch-errorfile-*"))


def test_processes_that_chose_different_jobs_stop_before_training(tmp_path):
    """Each process of a data-parallel run plans from the files it finds as it starts: ranks that chose different
    jobs (here: started with other seeds; as when another run finishes a file between their starts) are refused in
    one line before training, rather than averaging two runs' gradients into a results file that looks whole."""
    exp = tmp_path / "mixed.toml"
    exp.write_text(_toml({**SMALL, "name": "mixed", "strategy": {"methods": ["finetune"]}}))
    base = [sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots",
            "--output-dir", str(tmp_path)]
    torchrun = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(launcher.free_port())}
    ranks = [subprocess.Popen(base + ["--seed", str(r)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**torchrun, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    outputs = [p.communicate(timeout=300) for p in ranks]
    assert [p.returncode for p in ranks] == [2, 2], outputs
    assert ("the 2 processes of this run chose different jobs (rank 0: finetune-seed0.h5; rank 1: "
            "finetune-seed1.h5): they were started with other settings") in outputs[0][1], outputs
    assert not list(tmp_path.rglob("*.h5"))                      # nothing trained, nothing written
