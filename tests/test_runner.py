"""The run loop on real data: learning, forgetting, results files, kill-and-resume."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hdf5_files import edited, unseal

from spikecl.config import experiment_from_dict
from spikecl.continual import metrics
from spikecl.run_files import checkpoint_path
from spikecl.continual.checkpoint import (RunState, check_progress, checkpoint_setup, mixed_setups,
                                          numpy_rng_state, set_numpy_rng_state, tasks_setup)
from spikecl.continual.experiment import KIND, run_experiment
from spikecl.continual.results import read_continual
from spikecl.continual.runner import ContinualRun, measure_arrays
from spikecl.continual.strategy import Strategy
from spikecl.errors import ConfigError, ExistsError, ResultsError
from spikecl.experiment_kind import JobOptions
from spikecl.recorded import recorded_as_now
from spikecl.remedies import command_line
from spikecl.snn import build_mlp, make_trainer

PERMUTED_DIGITS = {
    "name": "pdigits", "seeds": [0],
    "data": {"dataset": "digits"},
    "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 3},
    "network": {"hidden": [96], "num_steps": 4},
    "train": {"epochs": 6, "batch_size": 32, "lr": 0.05, "eval_every": 40, "eval_samples": 100},
}


def config(tmp_path, **changes):
    raw = {**PERMUTED_DIGITS, "output_dir": str(tmp_path)}
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    if raw["train"].get("eval_every") == 0:                    # no continual evaluation: no sample count for it
        raw["train"] = {k: v for k, v in raw["train"].items() if k != "eval_samples"}
    return experiment_from_dict(raw)


def interrupt_at_task_2(monkeypatch, which=lambda run: True, error=KeyboardInterrupt):
    """Make the runs ``which`` selects raise ``error`` as they start their second task (as Ctrl-C or a kill would);
    returns a function that undoes it."""
    train_task = ContinualRun.train_task

    def interrupted(self, task, bar=None):
        if task == 1 and which(self):
            raise error
        return train_task(self, task, bar)

    monkeypatch.setattr(ContinualRun, "train_task", interrupted)
    return lambda: monkeypatch.setattr(ContinualRun, "train_task", train_task)


@pytest.fixture(scope="module")
def finetune_and_joint(tmp_path_factory):
    methods = ("finetune", "joint", "multitask")
    cfg = config(tmp_path_factory.mktemp("runs"), strategy={"methods": list(methods)})
    return {m: ContinualRun(cfg, m, 0).execute(progress_bar=False) for m in methods}


def test_learns_first_task_well_above_chance(finetune_and_joint):
    acc = finetune_and_joint["finetune"].acc_matrix
    assert acc[1, 0] > 0.8                     # 10 classes: chance is 0.1
    assert np.all(acc[0] < 0.3)                # untrained network


def test_finetune_forgets_joint_does_not(finetune_and_joint):
    ft, joint = (finetune_and_joint[m].acc_matrix for m in ("finetune", "joint"))
    assert metrics.bwt(ft) < -0.10
    assert metrics.bwt(joint) > -0.03
    assert metrics.acc(joint) > metrics.acc(ft) + 0.10


def test_multitask_trains_once_on_every_task(finetune_and_joint):
    acc = finetune_and_joint["multitask"].acc_matrix
    assert np.all(acc[1] > 0.7)                # after the first turn every task is learned
    np.testing.assert_array_equal(acc[1], acc[-1])            # later turns train nothing
    assert metrics.bwt(acc) == 0.0
    ft_steps = finetune_and_joint["finetune"].curve_iterations.size
    assert finetune_and_joint["multitask"].curve_iterations.size == ft_steps   # the same SGD steps in all


def test_multitask_evaluations_are_of_the_last_stage_and_have_no_stability_gap(finetune_and_joint):
    """Multitask trains all 3 tasks at once (its first turn): each evaluation is recorded while the last stage is
    trained (every task evaluated), and the metrics that need one task trained before another are NaN ("—")."""
    r = finetune_and_joint["multitask"]
    assert r.curve_task.size and np.all(r.curve_task == 2)
    assert not np.isnan(r.curve_accuracy).any()
    assert all(np.isnan(r.metrics[k]) for k in ("fwt", "min_acc", "wc_acc", "wf"))
    assert not any(np.isnan(finetune_and_joint["finetune"].metrics[k]) for k in ("min_acc", "wc_acc", "wf"))


def test_multitask_class_incremental_trains_every_output(tmp_path):
    cfg = config(tmp_path, stream={"kind": "split", "scenario": "class", "n_tasks": 2},
                 train={"epochs": 3, "eval_every": 0})
    acc = ContinualRun(cfg, "multitask", 0).execute(progress_bar=False).acc_matrix
    assert np.all(acc[-1] > 0.7)               # the second task's classes were not masked out in training


def test_class_incremental_forward_transfer_is_recorded_undefined(tmp_path, finetune_and_joint):
    """A task's classes are masked until it is learned, so class-incremental FWT is 0 by construction: a run records
    it as NaN ("—"); a domain-incremental run (the fixture's) keeps its number."""
    cfg = config(tmp_path, stream={"kind": "split", "scenario": "class", "n_tasks": 2, "train_per_task": 100},
                 train={"epochs": 1, "eval_every": 0})
    result = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    assert result.acc_matrix[0, 1] == result.acc_matrix[1, 1] == 0.0 and np.isnan(result.metrics["fwt"])
    assert np.isfinite(finetune_and_joint["finetune"].metrics["fwt"])


def test_a_given_stream_with_a_task_without_samples_is_refused_before_training(tmp_path):
    """A stream built by hand whose second task has no evaluation samples is a DataError naming the task, before
    any training (not a NaN accuracy matrix at the end)."""
    import dataclasses

    from spikecl.continual.runner import build_stream
    from spikecl.errors import DataError

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    stream = build_stream(cfg, 0)
    empty = dataclasses.replace(stream.tasks[1], x_test=stream.tasks[1].x_test[:0], y_test=stream.tasks[1].y_test[:0])
    with pytest.raises(DataError, match=r"task 2 has no test samples$"):
        ContinualRun(cfg, "finetune", 0, stream=dataclasses.replace(stream, tasks=(stream.tasks[0], empty)))
    unequal = dataclasses.replace(stream.tasks[1], y_train=stream.tasks[1].y_train[:-1])
    with pytest.raises(DataError, match=r"task 2 has \d+ training images but \d+ labels"):
        ContinualRun(cfg, "finetune", 0, stream=dataclasses.replace(stream, tasks=(stream.tasks[0], unequal)))
    twice = dataclasses.replace(stream, tasks=(stream.tasks[0], dataclasses.replace(stream.tasks[1], index=0)))
    with pytest.raises(DataError, match=r"task indices \[0, 0\] are not 0..1 in order"):
        ContinualRun(cfg, "finetune", 0, stream=twice)
    with pytest.raises(ConfigError, match="the given stream has 'class', cfg.stream.scenario 'domain'"):
        ContinualRun(cfg, "finetune", 0, stream=dataclasses.replace(stream, scenario="class"))
    with pytest.raises(ConfigError, match="the given stream has 1, cfg.stream.n_tasks 2"):
        ContinualRun(cfg, "finetune", 0, stream=dataclasses.replace(stream, tasks=stream.tasks[:1]))
    with pytest.raises(ConfigError, match="the given stream has 'split-mnist5k', <cfg.stream.kind>-<cfg.data.dataset>"
                                          fr"\[-flyhash\] '{stream.name}'"):
        ContinualRun(cfg, "finetune", 0, stream=dataclasses.replace(stream, name="split-mnist5k"))
    with pytest.raises(ConfigError, match=f"the given stream has '{stream.name}-flyhash'"):     # codes, config dense
        ContinualRun(cfg, "finetune", 0, stream=dataclasses.replace(stream, name=f"{stream.name}-flyhash"))
    (tmp_path / "exists.h5").touch()                    # an existing results file: refused before any training
    with pytest.raises(ExistsError, match="exists.h5 exists; pass overwrite=True"):
        ContinualRun(cfg, "finetune", 0, stream=stream).execute(tmp_path / "exists.h5", progress_bar=False)
    assert not (tmp_path / "exists.ckpt").exists()
    poisson = config(tmp_path, stream={"n_tasks": 2}, network={"encoder": "poisson"}, train={"epochs": 1})
    scaled = dataclasses.replace(stream.tasks[0], x_train=stream.tasks[0].x_train * 255)
    with pytest.raises(DataError, match="task 1 holds inputs outside 0..1 .* which the poisson encoder would clamp"):
        ContinualRun(poisson, "finetune", 0, stream=dataclasses.replace(stream, tasks=(scaled, stream.tasks[1])))


def test_a_given_stream_must_be_the_one_its_config_and_seed_build(tmp_path):
    """The results record the config and seed, and export rebuilds the stream from them: a hand-built stream with
    other classes per task, another evaluation split or another seed's split is refused before training; the
    config's own stream is taken."""
    from spikecl.continual.runner import build_stream
    from spikecl.data.datasets import load_dataset
    from spikecl.data.streams import make_stream

    cfg = config(tmp_path, data={"dataset": "digits"}, stream={"kind": "split", "scenario": "class", "n_tasks": 5},
                 train={"epochs": 1, "eval_every": 0})
    digits = load_dataset("digits")
    for options, difference in (({"classes_per_task": 1}, "task 1's classes (0,) against (0, 1)"),
                                ({"validation": 0.2, "eval_split": "validation"}, "task 1's eval_split 'validation'"),
                                ({"validation": 0.2}, "task 1's x_train")):
        stream = make_stream(digits, "split", 5, "class", **options)
        with pytest.raises(ConfigError, match=re.escape(f"differs from the one the config builds for seed 0 "
                                                        f"({difference}")):
            ContinualRun(cfg, "finetune", 0, stream=stream)
    permuted = config(tmp_path, data={"dataset": "digits"}, stream={"kind": "permuted", "n_tasks": 2})
    with pytest.raises(ConfigError, match=re.escape("(task 1's x_train")):
        ContinualRun(permuted, "finetune", 0, stream=make_stream(digits, "permuted", 2, "domain", seed=5))
    assert ContinualRun(cfg, "finetune", 3, stream=build_stream(cfg, 3)).stream.n_outputs == 10


def test_the_stream_build_stream_returned_is_taken_without_building_it_again(tmp_path, monkeypatch):
    """A stream shared by many runs costs no second build and no second copy; one changed with
    dataclasses.replace (its stamp dropped) is compared again."""
    import dataclasses

    from spikecl.continual import runner
    from spikecl.continual.runner import build_stream

    cfg = config(tmp_path, data={"dataset": "digits"}, stream={"kind": "permuted", "n_tasks": 2})
    stream = build_stream(cfg, 0)
    monkeypatch.setattr(runner, "build_stream", lambda *a: pytest.fail("built again"))
    assert ContinualRun(cfg, "finetune", 0, stream=stream).stream is stream
    built = []
    monkeypatch.setattr(runner, "build_stream", lambda *a: built.append(a) or build_stream(*a))
    ContinualRun(cfg, "finetune", 0, stream=dataclasses.replace(stream, name=stream.name))
    assert len(built) == 1                               # the stamp dropped: compared with a fresh build
    with pytest.raises(ConfigError, match=re.escape("(task 1's x_train")):
        ContinualRun(cfg, "finetune", 1, stream=stream)       # another seed's: stamped otherwise, compared, refused


def test_curves_record_continual_evaluation(finetune_and_joint):
    r = finetune_and_joint["finetune"]
    assert r.curve_accuracy.shape == (len(r.curve_iterations), 3)
    assert np.all(np.diff(r.curve_iterations) > 0)
    assert np.isnan(r.curve_accuracy[0, 1:]).all()           # tasks not yet seen are not evaluated
    assert {"acc", "bwt", "fwt", "forgetting", "min_acc", "wc_acc"} <= set(r.metrics)
    assert r.metrics["min_acc"] <= r.acc_matrix[1, 0] + 1e-9
    ends = r.task_ends                                       # each evaluation lies within the task it names
    assert ends.shape == (3,) and np.all(np.diff(ends) > 0)
    assert np.all(r.curve_iterations <= ends[r.curve_task])
    assert np.all(r.curve_iterations > np.concatenate([[0], ends])[r.curve_task])


def test_results_files_and_overwrite_protection(tmp_path):
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    [first] = run_experiment(cfg, progress_bar=False, log=lambda _: None)
    path = cfg.results_path("finetune", 0)
    stored = read_continual(path)
    np.testing.assert_array_equal(stored.acc_matrix, first.acc_matrix)
    assert stored.model["layers.0.synapse.weight"].shape == (96, 64)
    assert not checkpoint_path(path).exists()
    with pytest.raises(ExistsError, match="pass overwrite=True to replace it or resume=True to keep it"):
        run_experiment(cfg, progress_bar=False, log=lambda _: None)
    [kept] = run_experiment(cfg, resume=True, progress_bar=False, log=lambda _: None)
    np.testing.assert_array_equal(kept.acc_matrix, first.acc_matrix)


def test_same_seed_same_numbers_other_seed_differs(tmp_path):
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    a, b = (ContinualRun(cfg, "finetune", 0).execute(progress_bar=False) for _ in range(2))
    c = ContinualRun(cfg, "finetune", 1).execute(progress_bar=False)
    np.testing.assert_array_equal(a.acc_matrix, b.acc_matrix)
    assert not np.array_equal(a.acc_matrix, c.acc_matrix)


def test_bad_strategy_option_fails_before_training(tmp_path):
    cfg = config(tmp_path, strategy={"methods": ["ewc"], "ewc": {"lamda": 1.0}})
    with pytest.raises(ConfigError, match="unknown key 'strategy.ewc.lamda'"):
        run_experiment(cfg, progress_bar=False)
    assert not any(tmp_path.iterdir())


def test_resuming_with_another_thread_count_says_so(tmp_path, capsys):
    """CPU numbers depend on torch's thread count: a checkpoint records it, and resuming with another count prints
    a notice naming the count that resumes exactly (none with the same count), as the caller sets it: --threads on
    the command line, torch.set_num_threads in Python."""
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    threads = torch.get_num_threads()
    try:
        for written, resumed, flags in ((threads + 1, threads, False), (threads + 1, threads, True),
                                        (threads, threads, False)):
            torch.set_num_threads(written)
            ContinualRun(cfg, "finetune", 0).save_checkpoint(checkpoint_path(results))
            torch.set_num_threads(resumed)
            with command_line(flags):
                ContinualRun(cfg, "finetune", 0).execute(results, resume=True, overwrite=True, progress_bar=False)
            out = capsys.readouterr().out
            remedy = f"--threads {written}" if flags else f"torch.set_num_threads({written})"
            if written != resumed:
                assert (f"notice: finetune-seed0.ckpt was written with {written} torch threads, this run has "
                        f"{resumed}") in out and f"({remedy} resumes exactly)" in out
            else:
                assert "notice:" not in out
    finally:
        torch.set_num_threads(threads)



def test_resuming_with_other_processes_or_another_engine_says_so(tmp_path, capsys):
    """The process count and the engine are not settings --resume refuses, but numbers depend on them: a checkpoint
    written otherwise gives a notice naming what differs; results files record the process count."""
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    ContinualRun(cfg, "finetune", 0).save_checkpoint(checkpoint_path(results))
    state = torch.load(checkpoint_path(results), weights_only=True)
    assert state["processes"] == 1
    config_written = {**state["config"], "network": {**state["config"]["network"], "engine": "snntorch"}}
    for flags, remedy in ((False, "torchrun --nproc_per_node 2"), (True, "--nproc 2")):    # Python, command line
        torch.save({**state, "processes": 2, "config": config_written}, checkpoint_path(results))
        with command_line(flags):
            result = ContinualRun(cfg, "finetune", 0).execute(results, resume=True, overwrite=True,
                                                              progress_bar=False)
        out = capsys.readouterr().out
        assert ("notice: finetune-seed0.ckpt was written by a run of 2 process(es), this one has 1" in out
                and f"({remedy} resumes exactly)" in out)
        assert "written with network.engine = 'snntorch', this run uses 'fused'" in out
        assert result.environment["processes"] == 1


def test_resuming_on_another_cpu_says_so(tmp_path, capsys):
    """A checkpoint records the CPU and torch's kernels; resuming one written elsewhere prints a notice naming both
    (none on the same machine)."""
    from spikecl.environment import machine_kernels

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    for written in ("Intel Xeon (family 6, model 143), AVX512 kernels", machine_kernels()):
        ContinualRun(cfg, "finetune", 0).save_checkpoint(checkpoint_path(results))
        state = torch.load(checkpoint_path(results), weights_only=True)
        assert state["cpu"] == machine_kernels()
        torch.save({**state, "cpu": written}, checkpoint_path(results))
        ContinualRun(cfg, "finetune", 0).execute(results, resume=True, overwrite=True, progress_bar=False)
        out = capsys.readouterr().out
        if written != machine_kernels():
            assert (f"notice: finetune-seed0.ckpt was written on {written}, this run is on {machine_kernels()}: "
                    "the resumed run may end with other numbers") in out
        else:
            assert "notice:" not in out

class Killed(Exception):
    """Stands for a kill after a run's first checkpoint."""


def run_killed_after_the_first_task(cfg, results):
    """Execute a run of ``cfg`` that dies in its second task's measures (after the first task's checkpoint)."""
    run = ContinualRun(cfg, "finetune", 0)
    measure = run.measure
    run.measure = lambda task: measure(task) if task == 0 else (_ for _ in ()).throw(Killed())
    with pytest.raises(Killed):
        run.execute(results, progress_bar=False)
    assert checkpoint_path(results).exists() and not results.exists()


@pytest.mark.parametrize("old_checkpoint", [False, True])
def test_a_run_resumed_with_another_thread_count_records_both(tmp_path, old_checkpoint):
    """Killed with one thread count and resumed with another, the results' environment lists both counts (the
    report's machine note prints them) and what each task ran with; a checkpoint from before per-task setups were
    recorded gives the same from its notice fields. Resumed with the same count, the environment is a plain one."""
    from spikecl.continual.report import machine_note
    from spikecl.environment import cpu_model

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    threads = torch.get_num_threads()
    try:
        for written in (threads + 1, threads):
            results.unlink(missing_ok=True)
            torch.set_num_threads(written)
            run_killed_after_the_first_task(cfg, results)
            if old_checkpoint:
                state = torch.load(checkpoint_path(results), weights_only=True)
                del state["progress"]["setups"]
                torch.save(state, checkpoint_path(results))
            torch.set_num_threads(threads)
            ContinualRun(cfg, "finetune", 0).execute(results, resume=True, overwrite=True, progress_bar=False)
            env = read_continual(results).environment
            if written == threads:
                assert env["torch_threads"] == threads and "setups_by_task" not in env
                continue
            assert env["torch_threads"] == [written, threads]
            note = machine_note([read_continual(results)])
            assert f"{written} then {threads} torch threads" in note
            first, second = env["setups_by_task"]
            assert (first["tasks"], first["torch_threads"], second["tasks"], second["torch_threads"]) == \
                ([1, 1], written, [2, 2], threads)
            assert first["cpu"] == second["cpu"] == cpu_model() and first["engine"] == second["engine"] == "fused"
            assert second["device"] == "cpu" and first["device"] == (None if old_checkpoint else "cpu")
    finally:
        torch.set_num_threads(threads)


def test_a_run_resumed_on_the_other_engine_names_both_in_the_machine_note(tmp_path):
    """The config records the engine of the resumed part only: the note takes each stretch's engine from the
    environment, as it does for threads."""
    from spikecl.continual.report import machine_note

    changes = {"stream": {"n_tasks": 2}, "train": {"epochs": 1, "eval_every": 0}}
    cfg = config(tmp_path, **changes)
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    run_killed_after_the_first_task(cfg, results)
    resumed = config(tmp_path, **changes, network={"engine": "snntorch"})
    ContinualRun(resumed, "finetune", 0).execute(results, resume=True, progress_bar=False)
    run = read_continual(results)
    assert [s["engine"] for s in run.environment["setups_by_task"]] == ["fused", "snntorch"]
    assert "kernels, fused then snntorch engine on cpu, " in machine_note([run])
    from dataclasses import replace

    versions = replace(run, environment={**run.environment, "torch": ["2.12.0", "2.13.0"]})
    assert machine_note([versions]).endswith(" (resumed with torch 2.12.0 then 2.13.0).")     # not shown otherwise
    commits = replace(run, environment={**run.environment, "spikecl_source": ["abc", "def"]})
    assert "resumed" not in machine_note([commits])           # the same setup; "Made by" names the two commits

    def stretches(*engines):
        return replace(run, environment={**run.environment, "setups_by_task": [
            {**run.environment["setups_by_task"][0], "engine": e} for e in engines]})
    assert "kernels, fused then snntorch then fused engine on cpu" in machine_note([stretches("fused", "snntorch",
                                                                                              "fused")])
    assert "kernels, unrecorded then fused engine on cpu" in machine_note([stretches(None, "fused")])


def test_a_run_resumed_by_another_spikecl_commit_says_so_and_records_both(tmp_path, capsys, monkeypatch):
    """Numbers may move between commits: the resume prints a notice, the results record each task's commit and
    the report's "Made by" line names both."""
    from spikecl.continual import runner
    from spikecl.continual.report import source_note

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    monkeypatch.setattr(runner, "source_commit", lambda: "0123456789ab")
    run_killed_after_the_first_task(cfg, results)
    monkeypatch.setattr(runner, "source_commit", lambda: "ba9876543210")
    capsys.readouterr()
    ContinualRun(cfg, "finetune", 0).execute(results, resume=True, overwrite=True, progress_bar=False)
    assert ("notice: finetune-seed0.ckpt was written by spikecl 0123456789ab, this is ba9876543210: the tasks "
            "from here on may compute otherwise (the results file records both)") in capsys.readouterr().out
    done = read_continual(results)
    assert done.environment["spikecl_source"] == ["0123456789ab", "ba9876543210"]
    other = dataclasses.replace(done, seed=1, environment={**done.environment, "spikecl_source": "0123456789ab"})
    assert "(0123456789ab then ba9876543210) (finetune seed 0)" in source_note([done, other])
    assert "(0123456789ab then ba9876543210) (finetune seed 0)" in source_note([done])     # alone, too


def test_a_run_resumed_under_other_torch_and_numpy_versions_says_so_and_records_both(tmp_path, capsys, monkeypatch):
    """An upgrade between a kill and its resume: a notice, and the results record each stretch's versions (the
    file said the whole run was made with the new ones), as they do BLAS threads."""
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    run_killed_after_the_first_task(cfg, results)
    written = torch.__version__, np.__version__
    monkeypatch.setattr(torch, "__version__", "9.0.0+cpu")
    monkeypatch.setattr(np, "__version__", "9.1.0")
    capsys.readouterr()
    ContinualRun(cfg, "finetune", 0).execute(results, resume=True, progress_bar=False)
    assert (f"notice: finetune-seed0.ckpt was written with torch {written[0]} (now 9.0.0+cpu) and numpy "
            f"{written[1]} (now 9.1.0): the tasks from here on may compute otherwise (the results file records "
            "both)") in capsys.readouterr().out
    env = read_continual(results).environment
    assert env["torch"] == [written[0], "9.0.0+cpu"] and env["numpy"] == [written[1], "9.1.0"]
    assert [s["torch"] for s in env["setups_by_task"]] == [written[0], "9.0.0+cpu"]
    assert all("blas_threads" in s for s in env["setups_by_task"])


@pytest.mark.parametrize("method", ["finetune", "joint", "multitask"])
def test_the_progress_bar_total_is_right_from_the_first_task(tmp_path, monkeypatch, method):
    """joint trains on the union of the tasks so far and multitask on every task at once: their bars started at
    0/90 for 274 batches, and at 450 for 90 (re-estimated from each task's own size)."""
    from spikecl import progress

    totals = []

    class Bar:
        n, total = 0, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def refresh(self):
            totals.append(self.total)

        def update(self):
            self.n += 1

        def set_description(self, *args, **kwargs):
            pass

        set_postfix = set_description

    bar = Bar()
    monkeypatch.setattr(progress, "progress_bar", lambda *a, **k: bar)
    cfg = config(tmp_path, stream={"n_tasks": 3}, train={"epochs": 2, "eval_every": 0, "batch_size": 32})
    ContinualRun(cfg, method, 0).execute(cfg.results_path(method, 0), progress_bar=True)
    assert bar.n > 0 and totals == [bar.n] * 3, (totals, bar.n)


def test_a_network_whose_training_step_cannot_fit_is_refused_before_training(tmp_path, monkeypatch):
    """hidden = [20000, 20000] in a 3 GiB job was killed without a word: its gradients and a batch's activations
    exceed the memory free, refused in one line before any task; a run that fits trains on. A batch_size above a
    task's samples is sized as the batch it gives (it was refused as 2**62 samples' worth of memory)."""
    from spikecl.continual import runner

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0, "batch_size": 64})
    monkeypatch.setattr(runner, "available_memory", lambda: 100_000)
    with pytest.raises(ConfigError, match=r"^a training step of this network takes at least 0\.\d GiB \(gradients "
                                          r"and optimizer state 0\.\d, a batch of 64 at num_steps = \d+: 0\.\d\), more than the 0\.0 GiB "
                                          r"of memory free: a smaller network.hidden, train.batch_size or "
                                          r"network.num_steps$"):
        ContinualRun(cfg, "finetune", 0)
    monkeypatch.setattr(runner, "available_memory", lambda: 2**40)
    ContinualRun(cfg, "finetune", 0)
    huge = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0, "batch_size": 2**62})
    ContinualRun(huge, "finetune", 0)          # a batch holds no more than a task's samples: sized as that batch
    monkeypatch.setattr(runner, "available_memory", lambda: 100_000)
    with pytest.raises(ConfigError, match=r"a batch of \d+ at num_steps") as info:
        ContinualRun(huge, "finetune", 0)
    assert int(re.search(r"a batch of (\d+) ", str(info.value))[1]) <= 1797    # digits' training split at most


def test_kill_and_resume_gives_identical_results(tmp_path):
    """SIGKILL a CLI run after its first checkpoint, resume it, and compare with an uninterrupted run."""
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "killed"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 4\n'
                   '[network]\nhidden = [96]\n[train]\nepochs = 3\nbatch_size = 16\neval_every = 30\n'
                   '[strategy]\nmethods = ["replay"]\n')
    base = [sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots"]
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    proc = subprocess.Popen(base + ["--output-dir", str(out_a)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out_a / "killed" / "replay-seed0.ckpt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in time"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out_a / "killed" / "replay-seed0.h5").exists()
    resumed = subprocess.run(base + ["--output-dir", str(out_a), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(base + ["--output-dir", str(out_b)], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    a, b = read_continual(out_a / "killed" / "replay-seed0.h5"), read_continual(out_b / "killed" / "replay-seed0.h5")
    np.testing.assert_array_equal(a.acc_matrix, b.acc_matrix)
    np.testing.assert_array_equal(a.curve_accuracy, b.curve_accuracy)
    np.testing.assert_array_equal(a.curve_iterations, b.curve_iterations)
    np.testing.assert_array_equal(a.task_ends, b.task_ends)
    for name in b.model:
        np.testing.assert_array_equal(a.model[name], b.model[name])


def tiny_digits_run(tmp_path, name: str, methods: list[str], tables: str = "") -> list[str]:
    """``spikecl run`` arguments of a tiny 2-task digits experiment ``name`` of ``methods`` (with the TOML ``tables``
    added), its results under ``tmp_path/name``."""
    exp = tmp_path / "exp.toml"
    exp.write_text(f'name = "{name}"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 2\ntrain_per_task = 60\n'
                   'test_per_task = 30\n[network]\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 20\n'
                   f'[strategy]\nmethods = {json.dumps(methods)}\n{tables}')
    return ["run", str(exp), "--no-progress", "--no-plots", "--threads", "1", "--output-dir", str(tmp_path)]


def test_other_methods_options_and_variants_do_not_change_a_run(tmp_path, capsys, monkeypatch):
    """Fine-tuning's finished results, its checkpoint and its seeds stay valid when another method's options change
    or a variant is added: --resume keeps and continues them, and the report takes them as seeds of one row."""
    from spikecl.cli import main

    args = tiny_digits_run(tmp_path, "oth", ["finetune"], '[strategy.ewc]\nlam = 5.0\n')
    assert main(args) == 0
    resume_training = interrupt_at_task_2(monkeypatch, lambda run: run.seed == 1)
    tiny_digits_run(tmp_path, "oth", ["finetune"], '[strategy.ewc]\nlam = 500.0\n')      # the file edited (a --set
    other = ["--set", 'variants.ewc-strong={method="ewc","strategy.ewc.lam"=9.0}']       # no run reads is refused)
    assert main([*args, *other, "--seeds", "1", "--resume"]) == 130
    assert checkpoint_path(tmp_path / "oth" / "finetune-seed1.h5").exists()
    resume_training()
    trained, train_task = [], ContinualRun.train_task

    def recorded(self, task, bar=None):
        trained.append((self.method, self.seed, task))
        return train_task(self, task, bar)

    monkeypatch.setattr(ContinualRun, "train_task", recorded)
    capsys.readouterr()
    assert main([*args, *other, "--seeds", "0,1", "--set", 'strategy.methods=["finetune", "ewc-strong"]',
                 "--resume"]) == 0
    assert "finetune-seed0.h5: complete, kept" in capsys.readouterr().out
    assert [t for t in trained if t[0] == "finetune"] == [("finetune", 1, 1)]     # seed 1 from its checkpoint
    assert main(["report", str(tmp_path / "oth"), "--no-plots"]) == 0
    assert re.search(r"finetune\s.*±", capsys.readouterr().out)          # two seeds in one row


def test_results_scored_on_the_older_per_seed_test_subsample_are_not_kept(tmp_path, capsys, monkeypatch):
    """Before the evaluation subsample was fixed (one for every seed), each run seed drew its own: results files and
    checkpoints record the rule, and one made without it is not kept by --resume nor averaged with newer seeds; a run
    without --resume says the file was made by a spikecl that computed otherwise, not with another config."""
    import json

    from spikecl.cli import main

    exp = tmp_path / "exp.toml"
    exp.write_text('name = "sub"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 2\ntrain_per_task = 60\n'
                   'test_per_task = 30\n[network]\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 20\n')
    args = ["run", str(exp), "--no-progress", "--no-plots", "--threads", "1", "--output-dir", str(tmp_path)]
    assert main([*args, "--seeds", "0,1"]) == 0
    with edited(tmp_path / "sub" / "finetune-seed1.h5", "a") as f:        # as an older spikecl wrote it
        config = json.loads(f["config"].attrs["json"])
        assert config.pop("eval_subsample_seed") == 2000
        f["config"].attrs["json"] = json.dumps(config)
        unseal(f)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "sub"), "--no-plots"]) == 2
    assert "made with different settings (eval_subsample_seed differs)" in capsys.readouterr().err
    assert main([*args, "--seeds", "1"]) == 2                             # not "made with another config"
    assert ("finetune-seed1.h5 exists, made by a spikecl that computed otherwise (eval_subsample_seed differs: a rule "
            "of spikecl's, not a setting of yours); choose another --output-dir") in capsys.readouterr().err
    assert main([*args, "--seeds", "0,1", "--resume"]) == 2
    assert ("finetune-seed1.h5 was made by a spikecl that computed otherwise (eval_subsample_seed differs: a rule of "
            "spikecl's, not a setting of yours)") in capsys.readouterr().err

    resume_training = interrupt_at_task_2(monkeypatch)
    assert main([*args, "--seeds", "2"]) == 130
    checkpoint = checkpoint_path(tmp_path / "sub" / "finetune-seed2.h5")
    state = torch.load(checkpoint, weights_only=True)
    del state["eval_subsample_seed"]
    torch.save(state, checkpoint)
    resume_training()
    assert main([*args, "--seeds", "2", "--resume"]) == 2
    assert "written by a spikecl that computed otherwise (eval_subsample_seed differs: a rule of spikecl's" in \
        capsys.readouterr().err


def test_an_overwrite_refused_for_another_runs_lock_marks_nothing_stale(tmp_path, capsys):
    """--overwrite while another run writes one of the results is refused before any file is marked as to be
    replaced: the other files stay valid results (report and --resume read them), not old settings."""
    from spikecl.atomic import output_lock
    from spikecl.cli import main

    args = tiny_digits_run(tmp_path, "ow", ["finetune", "ewc", "si"])
    assert main(args) == 0
    folder = tmp_path / "ow"
    with output_lock(folder / "si-seed0.h5"):
        assert main([*args, "--overwrite"]) == 2
    assert "is writing" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".replacing") == []
    assert main([*args, "--resume"]) == 0
    assert capsys.readouterr().out.count("complete, kept") == 3
    (folder / "finetune-seed0.h5").unlink()     # the first job's file, which another run has yet to write
    kept = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.h5")}
    with output_lock(folder / "finetune-seed0.h5"):
        assert main([*args, "--overwrite"]) == 2
    assert "is writing" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".replacing") == []
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.h5")} == kept      # nothing trained again


def test_an_interrupted_overwrite_continues_with_resume_overwrite(tmp_path, capsys, monkeypatch):
    """--overwrite with new settings is interrupted in its second run (after that run's first checkpoint): --resume
    alone refuses the old results still there; --resume --overwrite keeps the run already replaced, continues the
    interrupted one from its checkpoint and replaces the rest, ending exactly where an uninterrupted run ends."""
    from spikecl.cli import main

    exp = tmp_path / "exp.toml"
    exp.write_text('name = "ow"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 3\ntrain_per_task = 120\n'
                   'test_per_task = 40\n[network]\nhidden = [16]\n[train]\nepochs = 1\nbatch_size = 20\n'
                   '[strategy]\nmethods = ["finetune", "ewc", "si"]\n')
    args = ["run", str(exp), "--no-progress", "--no-plots", "--threads", "1"]
    folder = tmp_path / "a" / "ow"
    assert main([*args, "--output-dir", str(tmp_path / "a")]) == 0
    resume_training = interrupt_at_task_2(monkeypatch, lambda run: run.method == "ewc")
    new = [*args, "--output-dir", str(tmp_path / "a"), "--set", "train.lr=0.03"]
    assert main([*new, "--overwrite"]) == 130
    assert "interrupted; continue with --resume --overwrite" in capsys.readouterr().err
    assert checkpoint_path(folder / "ewc-seed0.h5").exists()
    resume_training()
    replaced = (folder / "finetune-seed0.h5").stat().st_mtime_ns
    assert main([*new, "--resume"]) == 2
    assert "ewc-seed0.h5 is still to be replaced by an --overwrite that did not finish (interrupted or failed)" in \
        capsys.readouterr().err
    assert main([*new, "--resume", "--overwrite"]) == 0
    assert "finetune-seed0.h5: complete, kept" in capsys.readouterr().out
    assert (folder / "finetune-seed0.h5").stat().st_mtime_ns == replaced
    assert main([*args, "--output-dir", str(tmp_path / "b"), "--set", "train.lr=0.03"]) == 0
    for method in ("finetune", "ewc", "si"):
        a, b = (read_continual(tmp_path / x / "ow" / f"{method}-seed0.h5") for x in ("a", "b"))
        assert a.config["train"]["lr"] == 0.03
        np.testing.assert_array_equal(a.acc_matrix, b.acc_matrix)
        for name in b.model:
            np.testing.assert_array_equal(a.model[name], b.model[name])
    assert not list(folder.glob("*.ckpt"))


def test_a_job_deletes_its_old_checkpoint_on_overwrite_but_keeps_it_to_resume_an_overwrite(tmp_path, monkeypatch):
    """--overwrite alone starts afresh (the job deletes the checkpoint beside its results file before training);
    --resume --overwrite continues an interrupted overwrite from that checkpoint, so the job must keep it."""
    [job] = KIND.plan(config(tmp_path))
    found = []

    def execute(self, path, **options):
        found.append(checkpoint_path(path).exists())
        raise KeyboardInterrupt

    monkeypatch.setattr(ContinualRun, "__init__", lambda self, *args, **kwargs: None)     # no data read
    monkeypatch.setattr(ContinualRun, "execute", execute)
    for resume in (True, False):
        job.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        job.checkpoint.write_bytes(b"a checkpoint")
        with pytest.raises(KeyboardInterrupt):
            job.run(JobOptions(overwrite=True, resume=resume, progress=False, device="cpu"))
    assert found == [True, False]


@pytest.mark.parametrize("damage, message", [
    (lambda s: [1, 2, 3], "is not a spikecl run checkpoint (it lacks config, method"),
    (lambda s: {k: v for k, v in s.items() if k != "progress"}, "is not a spikecl run checkpoint (it lacks progress)"),
    (lambda s: {**s, "seed": 1}, "was written by a different experiment config (seed differs)"),
    (lambda s: {**s, "progress": {**s["progress"], "next_task": -5}}, "progress of -5 tasks does not fit"),
    (lambda s: {**s, "model": {k: v * float("nan") if v.is_floating_point() else v for k, v in s["model"].items()}},
     "contain NaN or infinity"),
    (lambda s: {**s, "model": {k: torch.zeros(3, 3) for k in s["model"]}}, "is not a consistent spikecl run "
                                                                             "checkpoint (RuntimeError"),
    (lambda s: {**s, "model": {k: v for k, v in s["model"].items() if k != "layers.0.lif.beta"}},
     "is not a consistent spikecl run checkpoint (ValueError: its model lacks layers.0.lif.beta)"),
    (lambda s: {**s, "model": {**s["model"], "layers.9.weight": torch.zeros(1)}},
     "(ValueError: its model holds layers.9.weight, which this network has not)"),
    (lambda s: {**s, "model": {**s["model"], "layers.0.lif.beta": torch.tensor(2.0)}},
     "is not a consistent spikecl run checkpoint (ConfigError: layers.0.lif.beta"),
    (lambda s: {**s, "config": None}, "is not a spikecl run checkpoint (its config is a NoneType, not a table)"),
    (lambda s: {**s, "config": 7}, "is not a spikecl run checkpoint (its config is a int, not a table)"),
    *((lambda s, k=key, v=value: {**s, "progress": {**s["progress"], k: v}}, message) for key, value, message in [
        ("next_task", 1.0, "progress of 1.0 tasks does not fit a stream of 2"),
        ("iteration", "3", "progress iteration '3' or stage"),
        ("rows", [[0.5, 0.5], ["x", 0.5]], "accuracy rows do not fit 1 tasks learned of 2"),
        ("rows", [[0.5, 0.5], [0.5]], "accuracy rows do not fit"),
        ("rows", [[0.5, 0.5], [0.5, float("nan")]], "accuracy rows do not fit"),
        ("task_ends", ["a"], "task ends ['a'] are not one non-decreasing iteration per task learned"),
        ("task_ends", [9, 18], "task ends [9, 18] are not one non-decreasing"),
        ("task_seconds", [float("nan")], "task times are not finite numbers"),
        ("curve_iterations", [1], "learning curves are not one iteration, stage and accuracy row per point"),
        ("measures", ["x"], "measures are not one table of numbers per task learned"),
        ("setups", ["x"], "setups are not one table per task learned (1)"),
    ]),
])
def test_a_checkpoint_that_does_not_fit_the_run_is_a_one_line_error(tmp_path, damage, message):
    """Checkpoints that load (valid torch files) but hold the wrong things: another seed's state, missing parts,
    impossible progress, NaN or misshapen weights. Each is refused by name, never resumed into a wrong result."""
    from spikecl.errors import ResultsError

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    results = cfg.results_path("finetune", 0)
    results.parent.mkdir(parents=True)
    run = ContinualRun(cfg, "finetune", 0)
    run.train_task(0)
    run.run_state.rows = [run.accuracy_row(0)] * 2
    run.run_state.next_task = 1
    run.save_checkpoint(checkpoint_path(results))
    state = torch.load(checkpoint_path(results), weights_only=True)
    torch.save(damage(state), checkpoint_path(results))
    with pytest.raises(ResultsError, match=re.escape(message)) as info:
        ContinualRun(cfg, "finetune", 0).execute(results, resume=True, progress_bar=False)
    assert "\n" not in str(info.value) and not results.exists()


def test_a_checkpoint_whose_strategy_state_holds_nan_is_refused_before_training(tmp_path):
    """EWC's Fisher set to NaN in a checkpoint trained a whole task, then blamed train.lr; a NaN in a strategy's
    state is a damaged checkpoint, named before any training."""
    from spikecl.errors import ResultsError

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0},
                 strategy={"methods": ["ewc"]})
    results = cfg.results_path("ewc", 0)
    results.parent.mkdir(parents=True)
    run = ContinualRun(cfg, "ewc", 0)
    run.train_task(0)                                                  # with EWC's Fisher pass after it
    run.run_state.rows = [run.accuracy_row(0)] * 2
    run.run_state.next_task = 1
    run.save_checkpoint(checkpoint_path(results))
    state = torch.load(checkpoint_path(results), weights_only=True)
    name = next(iter(state["strategy"]["fisher"]))
    state["strategy"]["fisher"][name] = state["strategy"]["fisher"][name] * float("nan")
    torch.save(state, checkpoint_path(results))
    with pytest.raises(ResultsError, match=re.escape(f"(ValueError: the strategy's state strategy.fisher.{name} "
                                                     "contains NaN)")):
        ContinualRun(cfg, "ewc", 0).execute(results, resume=True, progress_bar=False)


@pytest.mark.parametrize("damage, message", [
    (lambda s: {**s, "trainable": []}, "its trainable or optimised parameters are none, or not the network's"),
    (lambda s: {**s, "trainable": ["nowhere"]}, "its trainable or optimised parameters are none, or not the network's"),
    (lambda s: {**s, "strategy": {**s["strategy"], "fisher": {k: torch.zeros(2) for k in s["strategy"]["fisher"]}}},
     "ewc's fisher['layers.0.synapse.weight'] is (2,), not a tensor of a parameter's shape ((96, 64))"),
    (lambda s: {**s, "strategy": {**s["strategy"], "anchor": {"gone": torch.zeros(2)}}},
     "ewc's anchor['gone'] is (2,), not a tensor of a parameter's shape (no such parameter)"),
])
def test_a_checkpoints_strategy_state_that_does_not_fit_the_network_is_refused_before_training(tmp_path, damage,
                                                                                              message):
    """EWC's Fisher of other shapes, or no trainable parameter: refused on loading, not after the remaining tasks
    trained."""
    from spikecl.errors import ResultsError

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0},
                 strategy={"methods": ["ewc"]})
    results = cfg.results_path("ewc", 0)
    results.parent.mkdir(parents=True)
    run = ContinualRun(cfg, "ewc", 0)
    run.execute(progress_bar=False)                      # the Fisher of both tasks
    run.run_state.next_task, run.run_state.rows = 1, run.run_state.rows[:2]
    run.run_state.task_ends, run.run_state.measures = run.run_state.task_ends[:1], run.run_state.measures[:1]
    run.run_state.setups, run.run_state.task_seconds = run.run_state.setups[:1], run.run_state.task_seconds[:1]
    run.save_checkpoint(checkpoint_path(results))
    state = torch.load(checkpoint_path(results), weights_only=True)
    trained = []
    torch.save(damage(state), checkpoint_path(results))
    resumed = ContinualRun(cfg, "ewc", 0)
    resumed.train_task = lambda task, bar=None: trained.append(task)
    with pytest.raises(ResultsError, match=re.escape(message)):
        resumed.execute(results, resume=True, progress_bar=False)
    assert not trained and not results.exists()


def test_execute_takes_a_str_path_and_refuses_a_resume_without_one(tmp_path):
    """Every other writer takes str paths; a resume without a results path has no checkpoint to continue."""
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    with pytest.raises(ConfigError, match=r"execute\(resume=True\) needs the results path"):
        ContinualRun(cfg, "finetune", 0).execute(resume=True, progress_bar=False)
    path = str(tmp_path / "r.h5")
    result = ContinualRun(cfg, "finetune", 0).execute(path, progress_bar=False)
    assert read_continual(path).acc_matrix.tolist() == result.acc_matrix.tolist()


def interrupted_after_task_1(run: ContinualRun, path) -> None:
    """Execute ``run`` into ``path`` until its second task starts, where it stops as a kill would: its checkpoint
    holds task 1."""
    class Stop(Exception):
        pass

    train = run.train_task
    run.train_task = lambda task, bar=None: train(task, bar) if task == 0 else (_ for _ in ()).throw(Stop())
    with pytest.raises(Stop):
        run.execute(path, progress_bar=False)


def trained_tasks(run: ContinualRun, path) -> list[int]:
    """The tasks ``run`` trains when it resumes into ``path``."""
    train, trained = run.train_task, []
    run.train_task = lambda task, bar=None: (trained.append(task), train(task, bar))[1]
    run.execute(path, resume=True, progress_bar=False)
    return trained


def test_a_results_name_keeps_a_checkpoint_of_its_own(tmp_path):
    """A results path ending in .ckpt was its own checkpoint (the run trained, then failed on it, or with overwrite
    deleted its results); names differing after a dot (lr0.1, lr0.5) shared lr0.ckpt, one run deleting the
    other's. run.h5 keeps run.ckpt, as before."""
    assert checkpoint_path(tmp_path / "run.h5") == tmp_path / "run.ckpt"
    assert checkpoint_path(tmp_path / "lr0.1") == tmp_path / "lr0.1.ckpt" != checkpoint_path(tmp_path / "lr0.5")
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    run = ContinualRun(cfg, "finetune", 0)
    run.train_task = lambda task, bar=None: pytest.fail("trained before refusing the path")
    with pytest.raises(ConfigError, match=r"run.ckpt: a results path may not end in .ckpt, the suffix of the run's "
                                          r"checkpoint \(it would be written over its own results\); name it .h5$"):
        run.execute(tmp_path / "run.ckpt", overwrite=True, progress_bar=False)
    interrupted_after_task_1(ContinualRun(cfg, "finetune", 0), tmp_path / "lr0.1")
    assert (tmp_path / "lr0.1.ckpt").exists()
    ContinualRun(cfg, "finetune", 1).execute(tmp_path / "lr0.5", progress_bar=False)
    assert (tmp_path / "lr0.1.ckpt").exists() and (tmp_path / "lr0.5").exists()
    assert trained_tasks(ContinualRun(cfg, "finetune", 0), tmp_path / "lr0.1") == [1]
    assert not (tmp_path / "lr0.1.ckpt").exists()


def test_python_callers_follow_the_advice_the_messages_give(tmp_path):
    """execute(resume=True) of a finished file said "pass --overwrite", which then trained it again; a stale
    checkpoint's "run with --overwrite (with --resume as well ...)" did nothing from Python (only replace_stale)."""
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    path = tmp_path / "r.h5"
    ContinualRun(cfg, "finetune", 0).execute(path, progress_bar=False)
    with pytest.raises(ExistsError, match=r"r.h5 exists: the run finished \(spikecl.continual.results.read_continual "
                                          r"reads it; overwrite=True trains it again\)$"):
        ContinualRun(cfg, "finetune", 0).execute(path, resume=True, progress_bar=False)
    interrupted_after_task_1(ContinualRun(cfg, "finetune", 0), tmp_path / "s.h5")
    with pytest.raises(ResultsError, match="seed differs"):
        ContinualRun(cfg, "finetune", 1).execute(tmp_path / "s.h5", resume=True, progress_bar=False)
    again = ContinualRun(cfg, "finetune", 1).execute(tmp_path / "s.h5", resume=True, overwrite=True,
                                                    progress_bar=False)
    assert again.seed == 1 and read_continual(tmp_path / "s.h5").seed == 1


def test_a_renamed_experiment_resumes_its_checkpoint(tmp_path):
    """The experiment's folder renamed and --set name to match: the checkpoint was refused ("name differs"), and
    the only remedy offered, --overwrite, threw its finished tasks away. The name says where runs go, not what
    they do."""
    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0})
    interrupted_after_task_1(ContinualRun(cfg, "finetune", 0), tmp_path / "r.h5")
    assert trained_tasks(ContinualRun(dataclasses.replace(cfg, name="renamed"), "finetune", 0), tmp_path / "r.h5") \
        == [1]


def test_compile_is_rejected_where_it_cannot_run(tmp_path):
    with pytest.raises(ConfigError, match="train.compile: the online trainer"):
        config(tmp_path, train={"compile": True, "trainer": "online"})
    with pytest.raises(ConfigError, match="train.compile: expected true or false"):
        config(tmp_path, train={"compile": 1})


def test_the_online_trainer_refuses_compile_from_python():
    """The config's rule holds for the trainer itself: OnlineTrainer.compile() raises, its pass stays uncompiled."""
    trainer = make_trainer("online", build_mlp(4, [3], 2), 2)
    with pytest.raises(ConfigError, match="train.compile: the online trainer"):
        trainer.compile()
    assert trainer.forward is trainer.net


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fused", "snntorch"])
def test_compiled_run_matches_the_uncompiled_one(tmp_path, engine):
    """Same seed, same batches (batch size 32 divides every task's 1,438 training digits but for 30 samples, which
    the compiled run drops): accuracies within 3 points (the dropped batch and float rounding of the compiled
    kernels), losses finite (a NaN would raise)."""
    runs = {}
    for compiled in (False, True):
        cfg = config(tmp_path, name=f"c{compiled}", network={"hidden": [96], "num_steps": 4, "engine": engine},
                     stream={"kind": "permuted", "scenario": "domain", "n_tasks": 2},
                     train={"epochs": 1, "batch_size": 32, "compile": compiled, "eval_every": 0})
        runs[compiled] = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    assert runs[True].acc_matrix[1, 0] > 0.6
    np.testing.assert_allclose(runs[True].acc_matrix, runs[False].acc_matrix, atol=0.03)




@pytest.mark.slow
def test_a_compiled_snntorch_network_recording_its_activity_compiles_once():
    """HLOP records every batch's presynaptic activity, which lets the compiled forward pass reach each ``Leaky``'s
    membrane buffer: a fresh empty buffer after every pass recompiled each step until torch's limit (8), after which
    the run went uncompiled. The neurons keep one shared empty buffer, so no step after the first recompiles."""
    import torch._dynamo

    from spikecl.snn import LIFParams, build_mlp, make_trainer
    from spikecl.snn.trainers import TrainingHooks

    class Recording(TrainingHooks):
        uses_activity = True

    torch._dynamo.reset()
    torch.manual_seed(0)
    net = build_mlp(784, [32, 32], 10, LIFParams(), engine="snntorch")
    trainer = make_trainer("bptt", net, 4, encoder="direct")
    trainer.compile()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    batches = [(torch.rand(16, 784), torch.randint(0, 10, (16,))) for _ in range(4)]
    trainer.train_batch(*batches[0], None, None, optimizer, Recording())
    with torch._dynamo.config.patch(error_on_recompile=True):
        for x, y in batches[1:]:
            trainer.train_batch(x, y, None, None, optimizer, Recording())
    torch._dynamo.reset()


def test_compiled_kernels_are_cached_apart_per_cpu_kernel_set(monkeypatch):
    """torch's inductor cache is keyed without ATEN_CPU_CAPABILITY (a function compiled under avx2 kernels, then
    under AVX512 ones from the same cache, crashed with heap corruption here): train.compile gives each kernel set
    a folder of its own, and leaves a folder the user chose alone."""
    from spikecl.snn.trainers import separate_inductor_cache

    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:                                 # an older torch (2.3): its documented default folder
        import getpass
        import tempfile

        def default_cache_dir():
            return os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "restored after the test")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    trainer = make_trainer("bptt", build_mlp(4, [3], 2), 2)
    trainer.compile()
    kernels = torch.backends.cpu.get_cpu_capability().lower()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == f"{default_cache_dir()}_{kernels}"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/shared/cache")
    separate_inductor_cache()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/shared/cache"

SPIKECL_HLOP = {"method": "hlop", "strategy.hlop.step": "normalised", "strategy.hlop.step_rows": 1,
                "strategy.hlop.orthonormalize": True}


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", ["finetune", "ewc", "si", "replay", "gpm", "hlop", "hlop-spikecl"])
def test_training_steps_on_a_gpu_never_make_the_host_wait(tmp_path, method):
    """After the first batch of a task, a training step (the strategy's batch, forward, backward, projection,
    Hebbian update, optimiser step) runs without one host-device synchronisation: torch's sync debug mode raises on
    any. The first batch of a task may build a projector once; the finite-loss flag is read every CHECK_EVERY steps
    (switched off here)."""
    assert len(strict_task(tmp_path, method, "cuda")) > 10


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", ["finetune", "hlop"])
def test_the_triton_engine_never_makes_the_host_wait(tmp_path, method):
    """The same on the triton engine: its kernels read beta and the threshold on the device."""
    pytest.importorskip("triton")
    assert len(strict_task(tmp_path, method, "cuda", engine="triton")) > 10


def strict_task(tmp_path, method: str, device: str, engine: str = "fused") -> list[str]:
    """Train task 0 of a 2-task run of ``method`` on ``device`` (and ``engine``), then task 1 with every strategy
    batch and training step after the first in torch's sync debug mode "error"; returns the calls made."""
    import torch

    cfg = config(tmp_path, device=device, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0},
                 network={"engine": engine}, strategy={"methods": [method]}, variants={"hlop-spikecl": SPIKECL_HLOP})
    run = ContinualRun(cfg, method, 0)
    run.train_task(0)
    run.trainer.read_every = 10 ** 9
    calls = []

    def strict(name, call):
        def wrapped(*args, **kwargs):
            calls.append(name)
            if "train_step" not in calls[:-1]:                 # the task's first batch and step: lenient
                return call(*args, **kwargs)
            torch.cuda.set_sync_debug_mode("error")
            try:
                return call(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return wrapped

    run.train_step = strict("train_step", run.train_step)
    run.strategy.batch = strict("batch", run.strategy.batch)
    run.train_task(1)
    return calls


def test_a_checkpoint_of_other_settings_names_the_option_as_the_file_spells_it(tmp_path):
    from spikecl.errors import ResultsError

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0},
                 strategy={"methods": ["ewc"], "ewc": {"lam": 10.0}})
    results = cfg.results_path("ewc", 0)
    results.parent.mkdir(parents=True)
    ContinualRun(cfg, "ewc", 0).save_checkpoint(checkpoint_path(results))
    other = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1, "eval_every": 0},
                   strategy={"methods": ["ewc"], "ewc": {"lam": 20.0}})
    with pytest.raises(ResultsError, match=re.escape("(strategy.ewc.lam differs)")):
        ContinualRun(other, "ewc", 0).execute(results, resume=True, progress_bar=False)



class _Killed(Exception):
    pass


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="no CUDA device")])])
@pytest.mark.parametrize("method, optimizer", [("hlop+replay", "sgd"), ("replay", "adam")])
def test_a_run_resumes_on_its_device_as_it_would_have_run_on(tmp_path, monkeypatch, device, method, optimizer):
    """A checkpoint is mapped to the run's device when read. On a GPU, the CPU generators' states and Adam's step
    counts go back to the host (a CPU generator refuses a GPU state) and the GPU generator's state is restored (the
    strategies' own passes draw Poisson spikes from it); on either, the resumed run ends with the uninterrupted
    run's accuracy matrix."""
    cfg = config(tmp_path, device=device, stream={"n_tasks": 3}, network={"hidden": [32], "encoder": "poisson"},
                 train={"epochs": 1, "optimizer": optimizer, "lr": 0.001 if optimizer == "adam" else 0.05},
                 strategy={"methods": [method]})
    straight = ContinualRun(cfg, method, 0).execute(tmp_path / "straight.h5", progress_bar=False)
    resume_training = interrupt_at_task_2(monkeypatch, error=_Killed)
    with pytest.raises(_Killed):
        ContinualRun(cfg, method, 0).execute(tmp_path / "resumed.h5", progress_bar=False)
    resume_training()
    resumed = ContinualRun(cfg, method, 0)
    assert resumed.load_checkpoint(checkpoint_path(tmp_path / "resumed.h5"))
    assert all(s["step"].device.type == "cpu" for s in resumed.optimizer.state.values() if "step" in s)
    result = ContinualRun(cfg, method, 0).execute(tmp_path / "resumed.h5", resume=True, progress_bar=False)
    np.testing.assert_array_equal(result.acc_matrix, straight.acc_matrix)


@pytest.mark.parametrize("method, network", [
    ("gpm", {"hidden": [32], "bias": True}), ("ewc+hlop", {"kind": "cnn", "channels": [4]})])
def test_a_projection_run_with_frozen_biases_or_norms_resumes_after_its_second_task(tmp_path, monkeypatch, method,
                                                                                     network):
    """From the second task on a projection method freezes biases and batch norm, and the optimizer rebuilt for the
    task holds fewer parameters (``reset_optimizer = false`` is refused with them: they take neither momentum nor
    Adam, and plain SGD keeps no state): a checkpoint written after it restores that optimizer (and what was
    frozen), and the resumed run ends with the uninterrupted run's numbers."""
    raw = config(tmp_path, stream={"n_tasks": 3}, train={"epochs": 1, "eval_every": 0},
                 strategy={"methods": [method], "hlop": {"neurons": [[4, 4, 4]]}}).to_dict()
    cfg = experiment_from_dict({**raw, "network": {"num_steps": 4, **network}})
    straight = ContinualRun(cfg, method, 0).execute(tmp_path / "straight.h5", progress_bar=False)
    train_task = ContinualRun.train_task

    def killed_at_task_3(self, task, bar=None):
        if task == 2:
            raise _Killed
        return train_task(self, task, bar)

    monkeypatch.setattr(ContinualRun, "train_task", killed_at_task_3)
    with pytest.raises(_Killed):
        ContinualRun(cfg, method, 0).execute(tmp_path / "resumed.h5", progress_bar=False)
    monkeypatch.setattr(ContinualRun, "train_task", train_task)
    result = ContinualRun(cfg, method, 0).execute(tmp_path / "resumed.h5", resume=True, progress_bar=False)
    np.testing.assert_array_equal(result.acc_matrix, straight.acc_matrix)
    assert all(np.array_equal(result.model[k], straight.model[k]) for k in straight.model)


TINY_SPLIT = {"name": "tiny", "seeds": [0], "data": {"dataset": "digits"},
              "stream": {"kind": "split", "scenario": "domain", "n_tasks": 2, "train_per_task": 64,
                         "test_per_task": 20},
              "network": {"hidden": [16], "num_steps": 2}, "train": {"epochs": 1, "batch_size": 16}}


def test_a_divergence_in_a_tasks_last_unread_steps_is_reported_before_its_results():
    """On an accelerator the loss flags are read every CHECK_EVERY steps; a task shorter than that (or its last
    steps) diverging was never read, and the run wrote results with infinite weights. The flags are read at
    every task's end."""
    from spikecl.errors import NumericalError

    cfg = experiment_from_dict({**TINY_SPLIT, "strategy": {"methods": ["ewc"], "ewc": {"lam": 1e38}}})
    run = ContinualRun(cfg, "ewc", 0)
    run.trainer.read_every = 10 ** 6                    # as a device's deferred reads: none within the run
    with pytest.raises(NumericalError, match="^training loss became NaN or infinite"):
        run.execute(progress_bar=False)
    assert run.run_state.next_task == 1                 # task 2 diverged; nothing after it was evaluated


def test_a_run_that_stops_on_an_error_closes_its_progress_bar(monkeypatch):
    """A run stopped by an error (or Ctrl-C) mid-task closes its bar rather than leaving it half drawn."""
    from tqdm.auto import tqdm

    from spikecl import progress

    closed = []

    class Bar(tqdm):
        def close(self):
            closed.append(self.n)
            super().close()

    monkeypatch.setattr(progress, "progress_bar", lambda *args, **kwargs: Bar(total=0, disable=True))
    run = ContinualRun(experiment_from_dict({**TINY_SPLIT, "strategy": {"methods": ["finetune"]}}), "finetune", 0)
    monkeypatch.setattr(run, "measure", lambda task: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        run.execute()
    except KeyboardInterrupt:                            # its frames still hold the bar: closed by the run itself
        assert closed                                    # after task 1's batches, before its measures
    else:
        pytest.fail("the interrupt did not reach the caller")


class Corrupting(Strategy):
    """A strategy whose after-task phase breaks the weights (as replay's buffer training can with a huge rate)."""

    name = "corrupting"

    def after_task(self, task, train):
        with torch.no_grad():
            next(self.model.parameters()).fill_(float("nan"))


def test_weights_broken_by_a_strategys_after_task_phase_fail_the_run(tmp_path):
    from spikecl.continual.strategies import REGISTRY, register
    from spikecl.errors import NumericalError

    register("corrupting", Corrupting)
    try:
        cfg = experiment_from_dict({**TINY_SPLIT, "strategy": {"methods": ["corrupting"]}})
        with pytest.raises(NumericalError, match="^layers.0.synapse.weight became NaN or infinite in the task's "
                                                 "training or corrupting's after-task phase"):
            ContinualRun(cfg, "corrupting", 0).execute(tmp_path / "r.h5", progress_bar=False)
        assert not (tmp_path / "r.h5").exists()
    finally:
        del REGISTRY["corrupting"]


class Enlarging(Strategy):
    """A strategy whose after-task phase makes the weights huge but finite: their sum overflows float32."""

    name = "enlarging"

    def after_task(self, task, train):
        with torch.no_grad():
            next(self.model.parameters()).fill_(3e38)


def test_weights_whose_sum_overflows_are_finite_and_named_as_grown_too_large(tmp_path):
    """The end-of-task check reads the finiteness of each tensor's sum (no temporaries of a weight's size); an
    overflowing sum of finite weights is looked into tensor by tensor and is not called NaN, but weights beyond
    WEIGHT_LIMIT are a run that diverged with a finite loss (a data-parallel run's readout reached 3.5e17 and was
    written as a result); weights at the limit pass."""
    from spikecl.continual.runner import WEIGHT_LIMIT
    from spikecl.continual.strategies import REGISTRY, register
    from spikecl.errors import NumericalError

    register("enlarging", Enlarging)
    try:
        cfg = experiment_from_dict({**TINY_SPLIT, "strategy": {"methods": ["enlarging"]}})
        run = ContinualRun(cfg, "enlarging", 0)
        run._check_weights()
        run.strategy.after_task(0, None)
        assert not torch.isfinite(next(run.net.parameters()).sum())
        with pytest.raises(NumericalError, match=r"^layers.0.synapse.weight grew to \|w\| = 3e\+38 \(beyond 1e\+08\) "
                                                 r"in the task's training or enlarging's after-task phase: the run "
                                                 r"diverged though its loss stayed finite; lower train.lr"):
            run._check_weights()
        with torch.no_grad():
            next(run.net.parameters()).fill_(WEIGHT_LIMIT)
        run._check_weights()
    finally:
        del REGISTRY["enlarging"]


def test_batch_norm_statistics_gone_infinite_fail_the_run_and_an_overflowing_init_gain_is_refused(tmp_path):
    """A CNN whose initial gain overflows its batch norm's running variance (weights finite) trained at chance and
    wrote inf into its results, and its checkpoint could not be resumed: the buffers are checked with the weights.
    A gain that overflows the weights themselves is a ConfigError before any training."""
    from spikecl.errors import NumericalError

    cnn = {**TINY_SPLIT, "network": {"kind": "cnn", "channels": [4], "num_steps": 2, "init_gain": 1e20},
           "strategy": {"methods": ["finetune"]}}
    with pytest.raises(NumericalError,
                       match=r"^layers.0.norm.running_var became NaN or infinite .* network.init_gain$"):
        ContinualRun(experiment_from_dict(cnn), "finetune", 0).execute(tmp_path / "r.h5", progress_bar=False)
    assert not (tmp_path / "r.h5").exists()
    mlp = {**TINY_SPLIT, "network": {**TINY_SPLIT["network"], "init_gain": 1e39}, "strategy": {"methods": ["finetune"]}}
    with pytest.raises(ConfigError, match="^init_gain: 1e[+]39 makes the initial weights overflow float32$"):
        ContinualRun(experiment_from_dict(mlp), "finetune", 0)


def test_a_one_task_runs_line_leaves_out_its_undefined_bwt():
    assert metrics.headline({"acc": 0.413, "bwt": float("nan")}) == "ACC 41.3%"
    assert metrics.headline({"acc": 0.413, "bwt": -0.486}) == "ACC 41.3%  BWT -48.6"


def test_an_interrupted_run_is_neither_restarted_nor_lost_without_resume_or_overwrite(tmp_path, capsys, monkeypatch):
    """A plain run over an interrupted run's checkpoint is refused before any work (it used to restart and replace
    the checkpoint); --resume continues it, --overwrite starts again, --resume --overwrite replaces a damaged one;
    a folder where the checkpoint goes is refused before any work."""
    from spikecl.cli import main

    exp = tmp_path / "exp.toml"
    exp.write_text('name = "cut"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 2\ntrain_per_task = 60\n'
                   'test_per_task = 20\n[network]\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 20\n'
                   '[strategy]\nmethods = ["finetune"]\n')
    args = ["run", str(exp), "--no-progress", "--no-plots", "--threads", "1", "--output-dir", str(tmp_path)]
    ckpt = tmp_path / "cut" / "finetune-seed0.ckpt"
    resume_training = interrupt_at_task_2(monkeypatch)
    assert main(args) == 130 and ckpt.exists()
    resume_training()
    kept = ckpt.read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert (f"{ckpt} holds an interrupted run; pass --resume to continue it or --overwrite to start again"
            in capsys.readouterr().err)
    assert ckpt.read_bytes() == kept
    from spikecl.atomic import output_lock

    with output_lock(tmp_path / "cut" / "finetune-seed0.h5"):         # a run writing it now: live, not interrupted
        assert main(args) == 2
    assert f"is writing {tmp_path / 'cut' / 'finetune-seed0.h5'}; wait for it to end" in capsys.readouterr().err
    assert ckpt.read_bytes() == kept
    ckpt.write_bytes(b"damaged")
    assert main([*args, "--resume"]) == 2 and "is not a readable checkpoint" in capsys.readouterr().err
    assert main([*args, "--resume", "--overwrite"]) == 0 and not ckpt.exists()
    assert read_continual(tmp_path / "cut" / "finetune-seed0.h5").acc_matrix.shape == (3, 2)
    (tmp_path / "cut" / "finetune-seed0.h5").unlink()
    ckpt.mkdir()
    trained = []
    monkeypatch.setattr(ContinualRun, "train_task", lambda self, task, bar=None: trained.append(task))
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main([*args, *extra]) == 2
        assert f"{ckpt} is a folder where a run's checkpoint goes; move it away" in capsys.readouterr().err
    assert not trained


def test_a_folder_in_the_place_of_a_plot_is_refused_before_any_training(tmp_path, capsys, monkeypatch):
    """A folder named like one of the run's plots (its matrix, curves or comparison) would stop the run after its
    training; it is refused first, and ``--no-plots`` runs as before."""
    from spikecl.cli import main

    exp = tmp_path / "exp.toml"
    exp.write_text('name = "cut"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 2\ntrain_per_task = 60\n'
                   'test_per_task = 20\n[network]\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 20\n'
                   '[strategy]\nmethods = ["finetune"]\n')
    trained = []
    monkeypatch.setattr(ContinualRun, "train_task", lambda self, task, bar=None: trained.append(task))
    args = ["run", str(exp), "--no-progress", "--threads", "1", "--output-dir", str(tmp_path)]
    for name in ("finetune-seed0-curves.png", "comparison.png"):
        (tmp_path / "cut" / name).mkdir(parents=True)
        for extra in ([], ["--seed", "0"]):
            assert main([*args, *extra]) == 2
            assert (f"{tmp_path / 'cut' / name} is a folder where a plot goes; move it away"
                    in capsys.readouterr().err)
        (tmp_path / "cut" / name).rmdir()
    assert not trained
    (tmp_path / "cut" / "comparison.png").mkdir()
    assert main([*args, "--seed", "1"]) == 2                      # seed 1's plots beside the folder
    assert main([*args, "--no-plots"]) == 0 and trained


@pytest.mark.parametrize("model, plot", [("models/sparsey_digits.toml", "cue_recall_seed0.png"),
                                         ("models/ca3_cam.toml", "functional_raster.png"),
                                         ("models/ca3_cam.toml", "cue_exact_C100_M100.png")])
def test_every_kind_refuses_a_folder_in_the_place_of_its_plot_before_any_work(tmp_path, capsys, monkeypatch,
                                                                               model, plot):
    """Sparsey's and CA3's plots too: the whole run would otherwise end in the refusal."""
    from spikecl import experiment_kind
    from spikecl.cli import main

    monkeypatch.setattr(experiment_kind, "run_jobs", lambda *a, **k: pytest.fail("a job ran before the refusal"))
    name = "sparsey-digits" if "sparsey" in model else "ca3_cam"
    (tmp_path / name / plot).mkdir(parents=True)
    assert main(["run", model, "--seed", "0", "--output-dir", str(tmp_path), "--no-progress"]) == 2
    assert f"{tmp_path / name / plot} is a folder where a plot goes; move it away" in capsys.readouterr().err


def test_a_run_beside_other_methods_results_says_its_table_and_plots_are_its_own(tmp_path, capsys, monkeypatch):
    """A second run of one experiment with another method list reports and draws its own methods only; it says
    that the folder holds more results and that ``spikecl report`` compares them all (an unreadable file or
    another kind's is not counted), or that it would refuse to table them together (other settings)."""
    from spikecl.cli import main

    exp = tmp_path / "exp.toml"
    exp.write_text('name = "cut"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 2\ntrain_per_task = 60\n'
                   'test_per_task = 20\n[network]\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 20\n'
                   '[strategy]\nmethods = ["finetune"]\n')
    monkeypatch.setattr(ContinualRun, "train_task", lambda self, task, bar=None: None)
    args = ["run", str(exp), "--no-progress", "--no-plots", "--threads", "1", "--output-dir", str(tmp_path)]
    assert main(args) == 0 and "holds" not in capsys.readouterr().out
    (tmp_path / "cut" / "notes.h5").write_bytes(b"not a results file")
    assert main([*args, "--set", 'strategy.methods=["ewc"]']) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "cut"
    assert (f"note: {folder} holds 1 more results file than this run wrote (e.g. finetune-seed0.h5); the table "
            f"above is of this run's; 'spikecl report {folder}' compares them all") in out        # --no-plots
    assert main([*args, "--set", 'strategy.methods=["ewc", "finetune"]', "--overwrite"]) == 0
    assert "holds" not in capsys.readouterr().out
    assert main([*args, "--set", 'strategy.methods=["ewc"]', "--seed", "1", "--set", "stream.n_tasks=3"]) == 0
    out = capsys.readouterr().out                      # the folder's report would refuse: the note says so
    assert (f"note: {folder} holds 2 more results files than this run wrote (e.g. ewc-seed0.h5); the table above is "
            f"of this run's; 'spikecl report {folder}' would refuse to table them together: ") in out
    assert "hold ewc made with different settings (stream.n_tasks differ" in out
    assert main(["report", str(folder), "--no-plots"]) == 2


def _small_experiment(tmp_path, methods=("finetune", "ewc")):
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "cut"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 2\ntrain_per_task = 60\n'
                   'test_per_task = 20\n[network]\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 20\n'
                   f'[strategy]\nmethods = {list(methods)!r}\n'.replace("'", '"'))
    return ["run", str(exp), "--no-progress", "--no-plots", "--threads", "1", "--output-dir", str(tmp_path)]


def test_resume_replaces_only_damaged_files_not_foreign_newer_or_locked_ones(tmp_path, capsys):
    """--resume runs a damaged results file again (and says so) but refuses one of a newer schema, another tool's
    HDF5 file and one another process holds open; --resume --overwrite replaces them."""
    from spikecl.cli import main

    args = _small_experiment(tmp_path)
    assert main(args) == 0
    path = tmp_path / "cut" / "ewc-seed0.h5"
    original = path.read_bytes()
    changes = {"newer": lambda f: f.attrs.__setitem__("schema_version", 99),
               "foreign": lambda f: [f.attrs.__delitem__(k) for k in list(f.attrs)]}
    for name, change in changes.items():
        path.write_bytes(original)
        with edited(path, "a") as f:
            change(f)
        changed = path.read_bytes()
        capsys.readouterr()
        assert main([*args, "--resume"]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"spikecl: error: --resume: {path} ") and "pass --overwrite as well" in err, err
        assert path.read_bytes() == changed, name
    path.write_bytes(original)
    holder = subprocess.Popen([sys.executable, "-c", f"import h5py, time; f = h5py.File({str(path)!r}, 'r+'); "
                               "print('open', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        assert main([*args, "--resume"]) == 2
        assert f"{path} is held open by another process (its HDF5 lock)" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    path.write_bytes(original[:len(original) // 2])         # damaged: run again, said
    assert main([*args, "--resume"]) == 0
    assert f"{path}: damaged or incomplete, run again (it will be replaced)" in capsys.readouterr().out
    assert read_continual(path).acc_matrix.shape == (3, 2)
    with edited(path, "a") as f:
        f.attrs["schema_version"] = 99
    assert main([*args, "--resume", "--overwrite"]) == 0 and read_continual(path).acc_matrix.shape == (3, 2)


def test_an_overwrite_refused_for_bad_settings_leaves_the_old_results_keepable(tmp_path, capsys):
    """A setting checked only as a run builds its data (more training samples than a task holds) under --overwrite
    left every old file marked for replacing, so --resume with the original settings refused them and only
    --overwrite (retraining all) was offered; the marks this command made are taken back (an earlier unfinished
    overwrite's stay, and a damaged dataset keeps them: see the test after the next)."""
    from spikecl.cli import main

    args = _small_experiment(tmp_path, ("finetune", "ewc"))
    assert main(args) == 0
    folder = tmp_path / "cut"
    old = {m: (folder / f"{m}-seed0.h5").stat().st_mtime_ns for m in ("finetune", "ewc")}
    (folder / "ewc-seed0.h5.replacing").touch()                  # an earlier --overwrite that did not finish
    capsys.readouterr()
    assert main([*args, "--overwrite", "--set", "stream.train_per_task=100000"]) == 2
    assert "stream.train_per_task: 100000 samples, but task 1 holds" in capsys.readouterr().err
    assert [p.name for p in folder.glob("*.replacing")] == ["ewc-seed0.h5.replacing"]
    (folder / "ewc-seed0.h5.replacing").unlink()
    assert main([*args, "--resume"]) == 0
    assert "finetune-seed0.h5: complete, kept" in capsys.readouterr().out
    assert {m: (folder / f"{m}-seed0.h5").stat().st_mtime_ns for m in old} == old


def test_an_interrupted_overwrite_with_the_same_settings_still_replaces_every_file(tmp_path, capsys, monkeypatch):
    """--overwrite with unchanged settings (e.g. after a code fix), interrupted in its second run: the files it was
    still to replace stay marked, so --resume refuses to keep them and --resume --overwrite replaces them all."""
    from spikecl.cli import main

    args = _small_experiment(tmp_path, ("finetune", "ewc", "si"))
    assert main(args) == 0
    folder = tmp_path / "cut"
    old = {m: (folder / f"{m}-seed0.h5").stat().st_mtime_ns for m in ("finetune", "ewc", "si")}
    resume_training = interrupt_at_task_2(monkeypatch, lambda run: run.method == "ewc")
    assert main([*args, "--overwrite"]) == 130
    resume_training()
    assert sorted(p.name for p in folder.glob("*.replacing")) == ["ewc-seed0.h5.replacing", "si-seed0.h5.replacing"]
    assert main([*args, "--resume"]) == 2
    assert "ewc-seed0.h5 is still to be replaced by an --overwrite that did not finish" in capsys.readouterr().err
    assert main([*args, "--resume", "--overwrite"]) == 0
    assert "finetune-seed0.h5: complete, kept" in capsys.readouterr().out
    new = {m: (folder / f"{m}-seed0.h5").stat().st_mtime_ns for m in old}
    assert all(new[m] != old[m] for m in old) and not list(folder.glob("*.replacing"))
    assert not list(folder.glob("*.ckpt"))
    assert read_continual(folder / "finetune-seed0.h5").environment["h5py"]      # the first file records h5py too


def test_an_unknown_option_points_at_the_commands_help(capsys):
    from spikecl.cli import main

    with pytest.raises(SystemExit) as info:
        main(["run", "models/split_digits.toml", "--bogus"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "spikecl: error: unrecognized arguments: --bogus (see spikecl run --help)\n"


def test_a_rerun_without_curves_removes_the_earlier_runs_curves_plot(tmp_path):
    from spikecl.cli import main

    args = [a for a in _small_experiment(tmp_path, ("finetune",)) if a != "--no-plots"]
    assert main([*args, "--set", "train.eval_every=1"]) == 0
    curves = tmp_path / "cut" / "finetune-seed0-curves.png"
    assert curves.stat().st_size > 0
    assert main([*args, "--overwrite", "--set", "train.eval_every=0"]) == 0
    assert not curves.exists() and (tmp_path / "cut" / "finetune-seed0-matrix.png").exists()


def test_resume_refuses_a_checkpoint_of_other_settings_before_any_job_runs(tmp_path, capsys, monkeypatch):
    from spikecl.cli import main

    args = _small_experiment(tmp_path, ("finetune",))
    resume_training = interrupt_at_task_2(monkeypatch)
    assert main(args) == 130
    resume_training()
    capsys.readouterr()
    trained = []
    monkeypatch.setattr(ContinualRun, "train_task", lambda self, task, bar=None: trained.append(self.method))
    changed = [*args, "--resume", "--set", "train.lr=0.1", "--set", 'strategy.methods=["ewc", "finetune"]']
    assert main(changed) == 2 and not trained
    assert capsys.readouterr().err == (f"spikecl: error: --resume: {tmp_path / 'cut' / 'finetune-seed0.ckpt'} was "
                                       "written by a different experiment config (train.lr differs); pass "
                                       "--overwrite as well to start it again\n")


def test_an_overwrite_that_fails_leaves_its_files_marked_for_replacement(tmp_path, capsys):
    """An --overwrite that stops on an error in its job (here a damaged dataset, found when the job reads it) leaves
    the files it was to replace marked, as an interrupt does, so --resume never keeps them without a word; markers
    an earlier unfinished --overwrite left are kept too."""
    from spikecl.cli import main

    args = _small_experiment(tmp_path, ("finetune",))
    assert main(args) == 0
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (damaged / name).write_bytes(b"not an IDX file")
    for _ in range(2):
        assert main([*args, "--overwrite", "--set", 'data.dataset="mnist"', "--data-dir", str(damaged)]) == 2
        assert [p.name for p in (tmp_path / "cut").glob("*.replacing")] == ["finetune-seed0.h5.replacing"]
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "finetune-seed0.h5 is still to be replaced by an --overwrite that did not finish (interrupted or failed)" \
        in capsys.readouterr().err
    assert main([*args, "--resume", "--overwrite"]) == 0 and not list((tmp_path / "cut").glob("*.replacing"))


def test_a_missing_dataset_is_refused_before_any_job_runs_or_any_file_is_marked(tmp_path, capsys, monkeypatch):
    """A dataset missing for any job to run (here a variant's) stops the command before the first job trains and
    before --overwrite marks anything, the existing results untouched."""
    from spikecl.cli import main

    args = _small_experiment(tmp_path, ("finetune",))
    assert main(args) == 0
    kept = (tmp_path / "cut" / "finetune-seed0.h5").read_bytes()
    exp = tmp_path / "exp.toml"
    exp.write_text(exp.read_text().replace('methods = ["finetune"]', 'methods = ["finetune", "far"]')
                   + f'[variants.far]\nmethod = "finetune"\n"data.dataset" = "mnist"\n'
                     f'"data.data_dir" = "{tmp_path / "missing"}"\n')
    trained = []
    monkeypatch.setattr(ContinualRun, "train_task", lambda self, task, bar=None: trained.append(self.method))
    capsys.readouterr()
    for extra in (["--overwrite"], ["--resume"]):
        assert main([*args, *extra]) == 2, extra
        assert f"mnist not found under {tmp_path / 'missing'}" in capsys.readouterr().err and not trained
        assert not list((tmp_path / "cut").glob("*.replacing"))
        assert (tmp_path / "cut" / "finetune-seed0.h5").read_bytes() == kept


@pytest.mark.parametrize("damage", ["truncated", "foreign", "damaged results"])
def test_resume_refuses_a_damaged_checkpoint_or_one_beside_a_damaged_result_before_any_job(tmp_path, capsys,
                                                                                           monkeypatch, damage):
    from spikecl.cli import main

    args = _small_experiment(tmp_path, ("finetune",))
    results, ckpt = tmp_path / "cut" / "finetune-seed0.h5", tmp_path / "cut" / "finetune-seed0.ckpt"
    resume_training = interrupt_at_task_2(monkeypatch)
    changed = [*args, "--resume", "--set", 'strategy.methods=["ewc", "finetune"]']
    if damage == "damaged results":                  # a rerun of a damaged file, interrupted: both files there
        resume_training()
        assert main(args) == 0
        results.write_bytes(results.read_bytes()[:100])
        resume_training = interrupt_at_task_2(monkeypatch)
        assert main([*args, "--resume"]) == 130 and ckpt.exists() and results.exists()
        changed += ["--set", "train.lr=0.1"]
        expected = "was written by a different experiment config (train.lr differs)"
    else:
        assert main(args) == 130
        ckpt.write_bytes(ckpt.read_bytes()[:200]) if damage == "truncated" else torch.save({"model": {}}, ckpt)
        expected = "is not a readable checkpoint" if damage == "truncated" else "is not a spikecl run checkpoint"
    resume_training()
    capsys.readouterr()
    trained = []
    monkeypatch.setattr(ContinualRun, "train_task", lambda self, task, bar=None: trained.append(self.method))
    assert main(changed) == 2 and not trained
    err = capsys.readouterr().err
    assert f"{ckpt} {expected}" in err and err.count("\n") == 1


@pytest.mark.parametrize("train, message", [({"optimizer": "nope"}, "train.optimizer"),
                                            ({"batch_size": 0}, "train.batch_size: 0 is below the minimum 1"),
                                            ({"momentum": 5.0}, "train.momentum: 5.0 is above the maximum")])
def test_a_config_built_from_dataclasses_is_checked_as_a_files_would_be(tmp_path, train, message):
    """ExperimentConfig(...) skips the file's checks: the library's entry points check it again (a bad optimizer
    name trained with SGD, a zero batch size divided by zero) and say what is wrong in one line."""
    import dataclasses

    cfg = config(tmp_path, stream={"n_tasks": 2}, train={"epochs": 1})
    bad = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))
    with pytest.raises(ConfigError, match=re.escape(message)):
        ContinualRun(bad, "finetune", 0)
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_experiment(bad, progress_bar=False, log=lambda _: None)
    assert not any(tmp_path.rglob("*.h5"))


def test_a_cosine_schedule_sets_every_epochs_rate_and_restarts_with_each_task(tmp_path, monkeypatch):
    """The HLOP code's schedule: W warm-up epochs rising to train.lr, then a cosine decay over the task's epochs;
    constant leaves train.lr; a warm-up without the cosine schedule, or as long as the task, is refused."""
    from spikecl.continual.runner import lr_factor

    assert [lr_factor("cosine", e, 5, 2) for e in range(5)] == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.25])
    assert lr_factor("constant", 3, 5, 2) == 1.0
    rates = []
    step = ContinualRun.train_step
    monkeypatch.setattr(ContinualRun, "train_step",
                        lambda self, *a: (rates.append(self.optimizer.param_groups[0]["lr"]), step(self, *a)))
    cfg = config(tmp_path, stream={"n_tasks": 2, "train_per_task": 32}, train={
        "epochs": 4, "batch_size": 32, "eval_every": 0, "lr": 0.08, "lr_schedule": "cosine", "warmup_epochs": 1})
    ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    assert rates == pytest.approx([0.08 * lr_factor("cosine", e, 4, 1) for e in range(4)] * 2)
    assert rates[:4] == pytest.approx([0.08, 0.08, 0.06, 0.02])
    for train, message in (({"warmup_epochs": 2},
                            'train.warmup_epochs: applies only to train.lr_schedule = "cosine"'),
                           ({"lr_schedule": "cosine", "warmup_epochs": 2, "epochs": 2},
                            "train.warmup_epochs: 2 warm-up epochs leave none of the 2 epochs"),
                           ({"lr_schedule": "cosine", "warmup_epochs": 1, "epochs": 2},   # its decay epoch: factor 1
                            "train.lr_schedule: 'cosine' over 2 epochs with 1 of warm-up runs every epoch at train.lr"),
                           ({"lr_schedule": "cosine", "epochs": 1}, "'cosine' over 1 epochs with 0 of warm-up runs")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            config(tmp_path, train=train)
    assert config(tmp_path, train={"lr_schedule": "cosine", "warmup_epochs": 3, "epochs": 4})   # 1/3, 2/3, 1, 1
    recorded = {"train": {"lr_schedule": "cosine", "warmup_epochs": 1, "epochs": 2, "lr": 0.1}}
    as_now = recorded_as_now(recorded)["train"]                   # an old run of it resumes as the constant it was
    assert (as_now["lr_schedule"], as_now["warmup_epochs"], as_now["epochs"]) == ("constant", 0, 2)


def test_a_checkpoint_records_its_methods_options_with_defaults(tmp_path):
    """A default changed between a kill and a resume (a plugin's, or spikecl's after an upgrade) would train the
    tasks before and after the kill with different settings under one results file: the checkpoint keeps every
    option its method used, defaults included, and --resume names the one that differs."""
    from spikecl.continual.checkpoint import checkpoint_difference, read_checkpoint

    cfg = config(tmp_path, strategy={"methods": ["ewc"]})
    run = ContinualRun(cfg, "ewc", 0)
    run.save_checkpoint(tmp_path / "run.ckpt")
    state = read_checkpoint(tmp_path / "run.ckpt")
    assert state["options"]["ewc"]["lam"] > 0 and "fisher_samples" in state["options"]["ewc"]   # defaults too
    assert checkpoint_difference(state, "ewc", 0, cfg, "ewc") is None
    state["options"]["ewc"]["lam"] += 1.0                     # the default it was made under
    assert checkpoint_difference(state, "ewc", 0, cfg, "ewc") == "strategy.ewc.lam"
    del state["options"]                                      # a checkpoint of an older spikecl: compared as before
    assert checkpoint_difference(state, "ewc", 0, cfg, "ewc") is None
    hlop = config(tmp_path, strategy={"methods": ["hlop"]})
    ContinualRun(hlop, "hlop", 0).save_checkpoint(tmp_path / "hlop.ckpt")
    state = read_checkpoint(tmp_path / "hlop.ckpt")
    del state["options"]["hlop"]["lateral_scale"]            # written before the option existed: its default
    assert checkpoint_difference(state, "hlop", 0, hlop, "hlop") is None


def test_a_terminated_run_stops_as_an_interrupted_one_and_resumes(tmp_path):
    """SIGTERM (a scheduler's or timeout's) stops `spikecl run` as Ctrl-C does: exit status 130, the interruption
    and --resume named, no lock left behind; --resume then finishes the run."""
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "termed"\n[data]\ndataset = "digits"\n[stream]\nn_tasks = 4\n'
                   '[network]\nhidden = [64]\n[train]\nepochs = 3\nbatch_size = 16\n'
                   '[strategy]\nmethods = ["finetune"]\n')
    base = [sys.executable, "-m", "spikecl.cli", "run", str(exp), "--no-progress", "--no-plots", "--output-dir",
            str(tmp_path)]
    proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "termed" / "finetune-seed0.ckpt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in time"
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "spikecl: interrupted; continue with --resume" in stderr
    assert not list((tmp_path / "termed").glob("*.lock")) and not (tmp_path / "termed" / "finetune-seed0.h5").exists()
    resumed = subprocess.run(base + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "termed" / "finetune-seed0.h5").exists()


def test_a_synapse_whose_every_input_is_protected_is_noticed_once(capsys):
    """HLOP neurons as many as the readout's 16 inputs after task 1 (and GPM in the same combination): the run says
    that those weights no longer change, once, and names the synapse, instead of leaving a row at chance unexplained;
    and it says which tasks it learned no better than guessing."""
    stream = {**TINY_SPLIT["stream"], "n_tasks": 5}
    cfg = experiment_from_dict({**TINY_SPLIT, "stream": stream, "strategy": {
        "methods": ["hlop"], "hlop": {"neurons": [[4, 16], [2, 0]]}}})
    ContinualRun(cfg, "hlop", 0).execute(progress_bar=False)
    out = capsys.readouterr().out
    assert out.count("notice: hlop protects every input dimension") == 1, out
    assert ("notice: hlop protects every input dimension of readout (16) from task 2 on: later tasks' gradients no "
            "longer change those weights") in out
    assert re.search(r"notice: hlop learned task 2 no better than guessing among its 2 classes: \d+\.\d % right "
                     r"after training on it \(guessing: 50\.0 %\); a projection may leave it no room", out), out
    assert "learned task 1 " not in out                # the rows at chance, said to be so, not only explained
    cfg = experiment_from_dict({**TINY_SPLIT, "stream": stream, "strategy": {
        "methods": ["hlop"], "hlop": {"neurons": [[4, 8], [2, 2]]}}})
    ContinualRun(cfg, "hlop", 0).execute(progress_bar=False)
    assert "protects every input" not in capsys.readouterr().out    # 8 + 2 x 3 = 14 of 16: room left


def test_a_full_basis_is_called_protecting_only_where_its_projection_is_zero(capsys):
    """HLOP's Hebbian rows filling a synapse over two tasks are not orthonormal: I − HᵀH keeps (and reverses) part
    of a gradient, and the weights went on changing after the run said they no longer would. Orthonormal rows protect
    them exactly; replay's after-task phase changes them anyway, as the notice now says; a method without a
    projection is not told a projection may leave it no room."""
    from spikecl.continual.projection import full_rank_bases

    stream = {**TINY_SPLIT["stream"], "n_tasks": 3, "classes_per_task": 2}
    changes = {}
    for extra in ({}, {"orthonormalize": True}):
        cfg = experiment_from_dict({**TINY_SPLIT, "stream": stream, "strategy": {
            "methods": ["hlop"], "hlop": {"neurons": [[40, 12], [70, 4]], **extra}}})
        run = ContinualRun(cfg, "hlop", 0)
        before = {}
        train_task = run.train_task
        def tracked(task, bar=None, train_task=train_task, run=run, before=before):
            before[task] = run.net.readout.heads[0].weight.detach().clone()
            return train_task(task, bar)
        run.train_task = tracked
        run.execute(progress_bar=False)
        out = capsys.readouterr().out
        n, low, high = full_rank_bases(run.strategy)["readout"]
        changes[bool(extra)] = float((run.net.readout.heads[0].weight.detach() - before[2]).abs().max())   # in task 3
        if extra:
            assert max(-low, high) < 1e-4 and changes[True] == 0.0
            assert "protects every input dimension of layers.0 (64), readout (16) from task 3 on" in out, out
        else:
            assert n == 16 and high > 0.01 and changes[False] > 0.0
            assert "protects every input" not in out, out
            assert re.search(r"notice: hlop's basis of readout has as many rows as its 16 inputs from task 3 on, but "
                             r"they are not orthonormal: I − HᵀH keeps \d+\.\d % of a weight gradient along some "
                             r"direction.*so those weights still change", out), out
    cfg = experiment_from_dict({**TINY_SPLIT, "stream": stream, "strategy": {
        "methods": ["hlop+replay"], "hlop": {"neurons": [[4, 16], [2, 0]]}}})
    ContinualRun(cfg, "hlop+replay", 0).execute(progress_bar=False)
    assert ("from task 2 on: later tasks' gradients no longer change those weights (what a schedule fixing that "
            "synapse asks, e.g. a fixed readout; otherwise a schedule too large for the network); replay's own "
            "phase, which trains without projection, still does") in capsys.readouterr().out
    cfg = experiment_from_dict({**TINY_SPLIT, "train": {**TINY_SPLIT["train"], "lr": 0.0}})
    ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    out = capsys.readouterr().out
    assert "right after training on it (guessing: 20.0 %); train.lr is 0\n" in out and "projection" not in out, out


def test_in_class_il_guessing_is_among_every_class_learned_so_far(capsys):
    """A class-incremental task is told apart from every class learned so far: a run that learns nothing (lr 1e-9)
    is flagged against that chance, and a run that learns is not flagged though its tasks sit near 1 / own classes."""
    stream = {**TINY_SPLIT["stream"], "scenario": "class"}
    for lr, flagged in ((1e-9, True), (0.1, False)):
        cfg = experiment_from_dict({**TINY_SPLIT, "stream": stream, "train": {**TINY_SPLIT["train"], "lr": lr}})
        run = ContinualRun(cfg, "finetune", 0)
        run.execute(progress_bar=False)
        out = capsys.readouterr().out
        learned = 100 * run.result().acc_matrix[2, 1]
        assert ("notice: finetune learned task 2 no better than guessing among the 10 classes learned so far: "
                f"{learned:.1f} % right after training on it (guessing: 10.0 %)" in out) == flagged, (lr, out)
        assert flagged or learned > 10.0


def test_a_resumed_run_says_its_fully_protected_synapse_was_so_before_the_task_it_resumes_at(tmp_path, capsys,
                                                                                                monkeypatch):
    stream = {**TINY_SPLIT["stream"], "n_tasks": 5}
    cfg = experiment_from_dict({**TINY_SPLIT, "stream": stream, "strategy": {
        "methods": ["hlop"], "hlop": {"neurons": [[4, 16], [2, 0]]}}})
    run, path = ContinualRun(cfg, "hlop", 0), tmp_path / "hlop-seed0.h5"
    measure = run.measure
    monkeypatch.setattr(run, "measure", lambda task: measure(task) if task < 2 else (_ for _ in ()).throw(
        KeyboardInterrupt))                                         # killed in task 3, after task 2's checkpoint
    with pytest.raises(KeyboardInterrupt):
        run.execute(path, progress_bar=False)
    assert "of readout (16) from task 2 on" in capsys.readouterr().out
    ContinualRun(cfg, "hlop", 0).execute(path, resume=True, progress_bar=False)
    out = capsys.readouterr().out
    assert out.count("notice: hlop protects") == 1, out
    assert "of readout (16) from task 3 on, or earlier (as the checkpoint left it)" in out, out


def test_a_resume_may_move_its_data_folder_but_not_change_its_data(tmp_path, capsys, monkeypatch):
    """data.data_dir may differ on resume (a moved folder); other files in it (another MNIST-format set, or one's
    own files regenerated) were trained on silently, the results recording only the second folder."""
    import shutil

    from test_datasets import tiny_mnist

    tiny_mnist(tmp_path / "a", n_train=200, n_test=100, seed=0)
    tiny_mnist(tmp_path / "b", n_train=200, n_test=100, seed=1)
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    raw = {**TINY_SPLIT, "data": {"dataset": "mnist", "data_dir": str(tmp_path / "a")},
           "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 3}, "strategy": {"methods": ["finetune"]}}
    run, path = ContinualRun(experiment_from_dict(raw), "finetune", 0), tmp_path / "finetune-seed0.h5"
    measure = run.measure
    monkeypatch.setattr(run, "measure", lambda task: measure(task) if task < 1 else (_ for _ in ()).throw(
        KeyboardInterrupt))                                         # killed in task 2, after task 1's checkpoint
    with pytest.raises(KeyboardInterrupt):
        run.execute(path, progress_bar=False)
    other = experiment_from_dict({**raw, "data": {"dataset": "mnist", "data_dir": str(tmp_path / "b")}})
    with pytest.raises(ResultsError, match="written by a run on other mnist files .*point data.data_dir at the files"):
        ContinualRun(other, "finetune", 0).execute(path, resume=True, progress_bar=False)
    moved = experiment_from_dict({**raw, "data": {"dataset": "mnist", "data_dir": str(tmp_path / "moved")}})
    resumed = ContinualRun(moved, "finetune", 0).execute(path, resume=True, progress_bar=False)
    straight = ContinualRun(experiment_from_dict(raw), "finetune", 0).execute(progress_bar=False)
    assert np.array_equal(resumed.acc_matrix, straight.acc_matrix)


@pytest.mark.parametrize("per_task, changed", [(128, True), (100, False)])
def test_a_checkpoint_from_before_the_subsample_rule_changed_resumes_only_where_its_samples_are_the_same(
        tmp_path, monkeypatch, per_task, changed):
    """Tied subsample shares went by numpy's default sort (machine-dependent) before 2026-12-05: 128 of a digits
    task's training samples (and 256 of its test ones) are another subsample now, so an older checkpoint would
    continue on other samples than it trained on; 100 gives the same one, which resumes as before."""
    import dataclasses

    from spikecl.continual.runner import build_stream
    from spikecl.data.streams import ties_changed

    raw = {**TINY_SPLIT, "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 3,
                                    "train_per_task": per_task, "test_per_task": 2 * per_task},
           "strategy": {"methods": ["finetune"]}}
    cfg = experiment_from_dict(raw)
    run, path = ContinualRun(cfg, "finetune", 0), tmp_path / "finetune-seed0.h5"
    assert ties_changed(run.stream) == changed
    measure = run.measure
    monkeypatch.setattr(run, "measure", lambda task: measure(task) if task < 1 else (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run.execute(path, progress_bar=False)
    state = torch.load(checkpoint_path(path), weights_only=True)
    del state["subsample_ties"]                                     # as written before
    torch.save(state, checkpoint_path(path))
    if changed:
        with pytest.raises(ResultsError, match="written when a task's subsample could differ by machine"):
            ContinualRun(cfg, "finetune", 0).execute(path, resume=True, progress_bar=False)
        by_hand = dataclasses.replace(build_stream(cfg, 0))                # equal samples, built otherwise
        with pytest.raises(ResultsError, match="written when a task's subsample could differ by machine"):
            ContinualRun(cfg, "finetune", 0, stream=by_hand).execute(path, resume=True, progress_bar=False)
    else:
        ContinualRun(cfg, "finetune", 0).execute(path, resume=True, progress_bar=False)


def _progress(**changes) -> RunState:
    """The progress a 2-task run writes after its first task (10 iterations), with ``changes``."""
    base = dict(next_task=1, iteration=10, rows=[[0.1, 0.1], [0.9, 0.1]], task_ends=[10], setups=[{}])
    return RunState(**{**base, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"next_task": 3, "rows": [[0.1, 0.1]] * 4, "setups": [{}] * 3}, "progress of 3 tasks"),
    ({"rows": [[0.1, 0.1]] * 3}, "accuracy rows do not fit"),
    ({"rows": [[0.1, 0.1], [1.5, 0.1]]}, "accuracy rows do not fit"),
    ({"next_task": 2, "rows": [[0.1, 0.1]] * 3, "task_ends": [10, 5], "setups": [{}, {}]}, "task ends"),
    ({"setups": []}, "setups are not one table per task"),
    ({"task_ends": [11]}, "task ends"),                                          # after the iteration reached
])
def test_check_progress_refuses_progress_no_run_of_that_stream_writes(changes, message):
    check_progress(_progress(), 2)
    with pytest.raises(ValueError, match=message):
        check_progress(_progress(**changes), 2)


def test_check_progress_accepts_accuracies_at_both_bounds_and_a_finished_stream():
    check_progress(_progress(rows=[[0.0, 0.0], [1.0, 0.0]]), 2)                 # a task at 0 % or 100 % is a fraction
    check_progress(_progress(next_task=2, rows=[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], task_ends=[10, 10],
                             setups=[{}, {}]), 2)

def test_numpy_rng_state_saved_in_a_checkpoint_restores_the_very_next_draws(tmp_path):
    """The state goes through torch.save / torch.load(weights_only=True) as a checkpoint does; a normal draw leaves
    numpy's legacy generator holding a cached second normal, which must come back too."""
    np.random.seed(3)
    np.random.standard_normal()                            # caches a second normal: has_gauss = 1
    torch.save({"numpy": numpy_rng_state()}, tmp_path / "rng.pt")
    expected = np.random.standard_normal(3), np.random.random(4)
    np.random.seed(99)
    set_numpy_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["numpy"])
    got = np.random.standard_normal(3), np.random.random(4)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_measures_of_tasks_before_a_resumed_checkpoint_come_first_as_nan():
    np.testing.assert_array_equal(measure_arrays([{"synops": 5.0}, {"synops": 7.0}], 3)["synops"], [np.nan, 5, 7])


def test_mixed_setups_name_each_stretch_of_tasks_and_the_keys_that_differ():
    same = {"device": "cpu", "torch_threads": 2, "cpu": "x", "torch_cpu_capability": "AVX2", "processes": 1,
            "engine": "snntorch"}
    assert mixed_setups([same, same]) == {}
    out = mixed_setups([same, same, {**same, "torch_threads": 4}])
    assert out["torch_threads"] == [2, 4]
    assert [s["tasks"] for s in out["setups_by_task"]] == [[1, 2], [3, 3]]
    unrecorded = {**same, "cpu": None}             # a checkpoint that did not record its CPU differs from nothing
    assert mixed_setups([same, unrecorded, same]) == {}
    out = mixed_setups([unrecorded, {**same, "torch_threads": 4}])
    assert out["torch_threads"] == [2, 4] and "cpu" not in out


def test_a_run_resumed_after_its_last_task_records_the_setup_its_tasks_ran_with():
    """Every task trained with 1 thread, the process writing the results (a resume after the last task's
    checkpoint) has 2: the file recorded 2, though nothing ran with them. Now the tasks' one setup; where they
    differ, each as before."""
    one = {"device": "cpu", "torch_threads": 1, "cpu": "x", "torch_cpu_capability": "AVX2", "processes": 1,
           "engine": "fused"}
    assert tasks_setup([one, one]) == {"device": "cpu", "torch_threads": 1, "cpu": "x",
                                       "torch_cpu_capability": "AVX2", "processes": 1}
    unrecorded = tasks_setup([{**one, "cpu": None}])                # a checkpoint that did not record its CPU
    assert unrecorded["torch_threads"] == 1 and "cpu" not in unrecorded
    assert tasks_setup([one, {**one, "torch_threads": 2}]) == mixed_setups([one, {**one, "torch_threads": 2}])
    assert tasks_setup([]) == {}


def test_a_second_execute_trains_nothing_more_and_returns_the_same_results():
    """As the docstring says: the run's state stays; the network's weights are not touched again."""
    cfg = experiment_from_dict({"data": {"dataset": "digits"}, "stream": {"n_tasks": 2, "train_per_task": 40},
                                "network": {"hidden": [8]}, "train": {"eval_every": 0}})
    run = ContinualRun(cfg, "finetune", 0)
    first = run.execute(progress_bar=False)
    weights = {k: v.clone() for k, v in run.net.state_dict().items()}
    second = run.execute(progress_bar=False)
    assert np.array_equal(first.acc_matrix, second.acc_matrix) and run.run_state.next_task == 2
    assert all(torch.equal(weights[k], v) for k, v in run.net.state_dict().items())


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_an_execute_stopped_during_a_task_refuses_a_second_call(tmp_path, monkeypatch, stop):
    """A notebook's Ctrl-C (or an error) during task 2, then the cell run again: the half-trained task was trained
    on from where it stopped and written as a clean run (more steps than its epochs). Now the object refuses in one
    line; a new ContinualRun resumes from the end of task 1 and equals an uninterrupted run."""
    cfg = experiment_from_dict({"data": {"dataset": "digits"}, "stream": {"n_tasks": 2, "train_per_task": 40},
                                "network": {"hidden": [8]}, "train": {"eval_every": 0, "batch_size": 10, "epochs": 1}})
    clean = ContinualRun(cfg, "ewc", 0).execute(progress_bar=False)
    run, out = ContinualRun(cfg, "ewc", 0), tmp_path / "ewc-seed0.h5"

    def stop_in_task_2(run):
        step, calls = run.trainer.train_batch, []

        def stopping(*args, **kwargs):
            calls.append(1)
            if len(calls) == 6:                      # task 2's second batch
                raise stop("stopped")
            return step(*args, **kwargs)
        monkeypatch.setattr(run.trainer, "train_batch", stopping)

    stop_in_task_2(run)
    with pytest.raises(stop):
        run.execute(out, progress_bar=False)
    with pytest.raises(ConfigError, match=rf"^ContinualRun.execute: this run stopped during task 2 \({stop.__name__}"):
        run.execute(out, progress_bar=False)
    assert not out.exists() and checkpoint_path(out).exists()
    unsaved = ContinualRun(cfg, "ewc", 0)                        # stopped without a results path: no checkpoint to name
    stop_in_task_2(unsaved)
    with pytest.raises(stop):
        unsaved.execute(progress_bar=False)
    with pytest.raises(ConfigError, match=r"part-way through a task; build a new ContinualRun$"):
        unsaved.execute(progress_bar=False)
    resumed = ContinualRun(cfg, "ewc", 0).execute(out, resume=True, progress_bar=False)
    assert np.array_equal(resumed.acc_matrix, clean.acc_matrix) and list(resumed.task_ends) == list(clean.task_ends)


def test_a_run_trains_whatever_grad_mode_the_caller_left_and_refuses_another_default_dtype():
    """Notebook modes: grad mode left off (torch.no_grad(), torch.inference_mode()) ended training in
    torch's "element 0 of tensors does not require grad"; a float64 default dtype in an error telling the user to
    keep "the network" (which spikecl built) in float32."""
    cfg = experiment_from_dict({"data": {"dataset": "digits"}, "stream": {"n_tasks": 1, "train_per_task": 40},
                                "network": {"hidden": [8]}, "train": {"eval_every": 0, "epochs": 1}})
    clean = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            run = ContinualRun(cfg, "finetune", 0)
            assert np.array_equal(run.execute(progress_bar=False).acc_matrix, clean.acc_matrix)
            assert not torch.is_grad_enabled()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with pytest.raises(ConfigError, match=r"^ContinualRun: torch's default dtype is torch.float64; spikecl "):
            ContinualRun(cfg, "finetune", 0)
    finally:
        torch.set_default_dtype(previous)


def test_the_setup_of_a_checkpoint_from_before_setups_reads_its_cpu_and_kernels_apart():
    state = {"cpu": "Intel Xeon, 2.1 GHz, AVX2 kernels", "torch_threads": 2, "processes": 1,
             "config": {"network": {"engine": "fused"}}}
    assert checkpoint_setup(state) == {"device": None, "torch_threads": 2, "blas_threads": None,
                                       "cpu": "Intel Xeon, 2.1 GHz", "torch_cpu_capability": "AVX2", "processes": 1,
                                       "spikecl_source": None, "torch": None, "numpy": None, "engine": "fused"}
