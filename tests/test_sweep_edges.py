"""Sweep edge cases: a checkpoint an unfinished run left with other settings (refused before any work, discarded
with --overwrite), select_seeds checked as seeds are, a selecting sweep with a FAILED trial exits with 1 (a
diverged one with 0), and one-line messages for misused selection keys and unquoted dotted keys. Runs execute in
this process through a stand-in for Ray (:class:`InlineRay`), so no Ray instance starts."""

import json
import os
import re
import signal
import time

import pytest
import torch

from spikecl import errors
from spikecl.cli import main
from spikecl.commands.sweep import check_kept, diverged
from spikecl.config import experiment_from_dict
from spikecl.continual import plots, sweep_ray
from spikecl.continual.results import read_continual
from spikecl.continual.runner import ContinualRun
from spikecl.continual.sweep import load_sweep, refuse_other_settings, sweep_dir
from spikecl.errors import ConfigError, NumericalError
from spikecl.io import read_run
from spikecl.remedies import command_line
from spikecl.run_files import checkpoint_path, replacing
from spikecl.toml_files import apply_overrides
from test_sweep import BASE as GRID_BASE

BASE = GRID_BASE.replace('dataset = "digits"\n', 'dataset = "digits"\nvalidation = 0.2\n')   # a validation split

SWEEP = """base = "base.toml"
name = "edges"
output_dir = "{out}"
methods = ["finetune"]
seeds = [0]
max_retries = 0
num_cpus = 1
"""

SELECT = SWEEP + """select = "acc"
select_seeds = [3]
[grid]
"train.lr" = [0.05, 0.1]
"""


class InlineRay:
    """Just enough of Ray for :func:`execute_sweep`: a task runs in this process when it is submitted."""

    class exceptions:
        class RayError(Exception):
            pass

    class Ref:
        def __init__(self, fn, args):
            try:
                self.value, self.error = fn(*args), None
            except Exception as exc:  # what a Ray task raising becomes: a RayError with the cause
                self.value, self.error = None, exc

    def cluster_resources(self):
        return {"CPU": 1}

    def remote(self, **_):
        return lambda fn: type("Remote", (), {"remote": staticmethod(lambda *args: self.Ref(fn, args))})

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.error is not None:
            error = self.exceptions.RayError(str(ref.error))
            error.cause = ref.error
            raise error
        return ref.value

    def shutdown(self):
        pass


@pytest.fixture
def inline_ray(monkeypatch):
    """Sweeps run their tasks in this process (train_run sets torch's threads: restored afterwards)."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: (InlineRay(), False))
    yield
    torch.set_num_threads(threads)


def leave_stale_checkpoint(run, change="train.epochs=2"):
    """The checkpoint of ``run`` as a killed attempt made with other settings (``change``) leaves it."""
    run.results.parent.mkdir(parents=True, exist_ok=True)
    other = ContinualRun(experiment_from_dict(apply_overrides(run.raw, [change])), run.method, run.seed)
    other.save_checkpoint(checkpoint_path(run.results))


def test_a_checkpoint_made_with_other_settings_is_refused_before_any_work(sweep_files, monkeypatch, capsys):
    path = sweep_files(BASE, SWEEP)
    [run] = load_sweep(path).runs
    leave_stale_checkpoint(run)
    ckpt = checkpoint_path(run.results)
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt} (the checkpoint of an unfinished run) was made with other settings than sweep edges plans " \
           "(train.epochs differs); pass --overwrite" in err
    with pytest.raises(ConfigError, match=r"\(train.epochs differs\)"):
        check_kept(load_sweep(path), overwrite=False)              # a selecting sweep's final runs: checked early
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "differs (checkpoint: train.epochs)  base/finetune-seed0" in out
    assert ("note: the sweep would refuse 1 run(s) made with other settings (or left by an unfinished --overwrite); "
            "--overwrite trains them again") in out
    assert main(["sweep", str(path), "--dry-run", "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "replaced (checkpoint: train.epochs)  base/finetune-seed0" in out and "would refuse" not in out
    assert ckpt.exists()
    leave_stale_checkpoint(run, "train.epochs=1")                   # the sweep's own settings: a run to resume
    check_kept(load_sweep(path), overwrite=False)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "to resume  base/finetune-seed0" in capsys.readouterr().out
    from processes import holding_locks

    from spikecl.continual.sweep import sweep_dir

    locks = run.results.with_name(run.results.name + ".lock"), sweep_dir(load_sweep(path)) / "sweep.h5.lock"
    with holding_locks(*locks) as [trainer, sweeper]:                        # a sweep running there now
        assert main(["sweep", str(path), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"note: a sweep (PID {sweeper}) is running in ") and \
            f"training now (PID {trainer})  base/finetune-seed0" in out


def test_a_dry_run_tells_a_file_a_running_overwrite_marked_from_one_an_unfinished_left(sweep_files, inline_ray,
                                                                                         capsys):
    from processes import sleeping

    from spikecl.run_files import _start_time

    path = sweep_files(BASE, SWEEP)
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    [run] = load_sweep(path).runs
    capsys.readouterr()
    with sleeping() as overwrite:                       # a sweep --overwrite (its driver) running now
        replacing(run.results).write_text(f"{overwrite.pid} {_start_time(overwrite.pid)}")
        assert main(["sweep", str(path), "--dry-run"]) == 0
        assert f"to be replaced now (PID {overwrite.pid})  base/finetune-seed0" in capsys.readouterr().out
    assert main(["sweep", str(path), "--dry-run"]) == 0            # it ended without replacing the file
    assert "differs (an unfinished --overwrite)  base/finetune-seed0" in capsys.readouterr().out


@pytest.mark.parametrize("n_made, n_checkpoints, first, more", [
    (3, 2, "", " (and 2 more results file(s) and 2 checkpoint(s))"),
    (1, 2, "", " (and 2 checkpoint(s))"),
    (0, 3, " (the checkpoint of an unfinished run)", " (and 2 more checkpoint(s))"),
    (1, 0, "", ""),
])
def test_the_refusal_counts_results_files_and_checkpoints_apart(sweep_files, n_made, n_checkpoints, first, more):
    path = sweep_files(BASE, SWEEP.replace("seeds = [0]", "seeds = [0, 1, 2, 3, 4]"))
    sweep = load_sweep(path)
    runs = [r.id for r in sweep.runs]
    made = dict.fromkeys(runs[:n_made], "train.lr")
    checkpoints = dict.fromkeys(runs[n_made:n_made + n_checkpoints], "train.epochs")
    shown = sweep.runs[0].results if made else checkpoint_path(sweep.runs[0].results)
    with pytest.raises(ConfigError) as info:
        refuse_other_settings(sweep, made, checkpoints)
    assert str(info.value) == (f"{shown}{first} was made with other settings than sweep edges plans "
                               f"({'train.lr' if made else 'train.epochs'} differs){more}; pass overwrite=True to "
                               "train again what differs")
    with command_line(), pytest.raises(ConfigError, match=f"{re.escape(more)}; pass --overwrite to train again what "
                                                        "differs$"):
        refuse_other_settings(sweep, made, checkpoints)


def test_overwrite_discards_a_checkpoint_made_with_other_settings(sweep_files, inline_ray, capsys):
    """The run starts afresh (its runner discards the stale checkpoint, as ``spikecl run --resume --overwrite``)
    instead of failing on it at every attempt."""
    path = sweep_files(BASE, SWEEP)
    [run] = load_sweep(path).runs
    leave_stale_checkpoint(run)
    ckpt = checkpoint_path(run.results)
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "1 runs, 0 complete (kept), 1 to run (1 checkpoint(s) made with other settings, started afresh)" in out
    assert "FAILED" not in out and "sweep edges: 1/1 runs complete" in out
    assert read_continual(run.results).config["train"]["epochs"] == 1 and not ckpt.exists()


def test_overwrite_keeps_the_final_runs_where_no_kept_trial_is_replaced(sweep_files, inline_ray, capsys):
    """A point added with --overwrite replaces no kept file: the final run of the same choice is kept, not trained
    again as "left by an unfinished --overwrite" (every final run was, whenever any trial ran)."""
    path = sweep_files(BASE, SELECT)
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    finals = sorted((load_sweep(path).folder / "final").glob("*-seed*.h5"))
    stamps = [p.stat().st_mtime_ns for p in finals]
    capsys.readouterr()
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--overwrite",
                 "--set", 'grid."train.lr"=[0.01, 0.05, 0.1]']) == 0
    out = capsys.readouterr().out
    assert "edges: 3 runs, 2 complete (kept), 1 to run\n" in out and "selected finetune @ lr=0.1:" in out, out
    assert "edges/final: 1 runs, 1 complete (kept), 0 to run\n" in out and "unfinished --overwrite" not in out, out
    assert [p.stat().st_mtime_ns for p in finals] == stamps


def test_a_selecting_sweep_with_a_failed_trial_exits_with_1_after_its_final_runs(sweep_files, inline_ray,
                                                                                 fail_runs, capsys):
    path = sweep_files(BASE, SELECT)
    fail_runs({"lr=0.1/finetune-seed3": 1})
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 1
    out = capsys.readouterr().out
    assert "FAILED lr=0.1/finetune-seed3 after 1 attempt(s): InjectedFailure" in out
    assert "selected finetune @ lr=0.05" in out                     # the failed point is never chosen ...
    assert "sweep edges/final: 1/1 runs complete" in out            # ... and the final runs still run and report
    assert (path.parent / "results" / "edges" / "final" / "finetune-seed0.h5").exists()


def test_a_diverging_trial_is_an_outcome_not_a_failure(sweep_files, inline_ray, fail_runs, monkeypatch, capsys):
    """A trial whose training loss became NaN or infinite (a penalty too strong for the learning rate) is never
    chosen, and the command still exits with 0: the shipped selecting sweeps have such points on purpose. The
    trials' plot says its numbers are the validation split's, the final runs' the test split's."""
    drawn, draw = [], plots.plot_method_comparison
    monkeypatch.setattr(plots, "plot_method_comparison", lambda *a, **k: drawn.append(k["title"]) or draw(*a, **k))
    path = sweep_files(BASE, SELECT)
    fail_runs({"lr=0.1/finetune-seed3": 1}, NumericalError)
    assert main(["sweep", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "FAILED lr=0.1/finetune-seed3 after 1 attempt(s): NumericalError" in out
    assert "selected finetune @ lr=0.05" in out and "sweep edges/final: 1/1 runs complete" in out
    assert drawn == 2 * ["sweep edges: ACC and BWT per method and point (validation split)"] + [   # then marked
        "sweep edges/final: ACC and BWT per method and point (test split)"]


@pytest.mark.parametrize("seeds, message", [
    ("[3, 3]", "sweep.select_seeds: 3 appears more than once"),
    ("[99999999999]", r"sweep.select_seeds\[0\]: 99999999999 is above the maximum 4294967295"),
])
def test_select_seeds_are_checked_as_seeds_are(sweep_files, seeds, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(sweep_files(BASE, SELECT.replace("select_seeds = [3]", f"select_seeds = {seeds}")))


@pytest.mark.parametrize("sweep, overrides, message", [
    (SELECT, ['select="loss"'], "sweep.select: 'loss' is not allowed; choose 'acc' (or leave select out)"),
    (SWEEP + "min_bwt = -3.0\n", [], 'sweep.min_bwt: applies only with select = "acc"; set select or remove min_bwt'),
    (SWEEP + "select_seeds = [1]\n", [], "sweep.select_seeds: applies only with select = \"acc\"; set select or "
                                          "remove select_seeds"),
    (SWEEP, ["set.train.epochs=2"], 'sweep: set.train: a table is not a value; quote each whole dotted key: '
                                    '"train.epochs" = 2, or overrides=[\'set."train.epochs"=2\']'),
    (SWEEP, ["train.epochs=2"], "unknown key 'sweep.train': load_sweep's overrides set the sweep file's keys; set "
                                "train.epochs for every run with overrides=['set.\"train.epochs\"=...']"),
    (SWEEP + "[[points]]\ntrain.lr = 0.05\n", [], 'sweep: points.train: a table is not a value; quote each whole '
                                                  'dotted key: "train.lr" = 0.05'),
])
def test_misused_keys_are_one_line_errors_that_say_what_to_write(sweep_files, sweep, overrides, message):
    with pytest.raises(ConfigError) as exc:
        load_sweep(sweep_files(BASE, sweep), overrides)
    assert str(exc.value).endswith(message), str(exc.value)
    assert load_sweep(sweep_files(BASE, SWEEP), ['set."train.epochs"=2']).runs[0].raw["train"]["epochs"] == 2


@pytest.mark.parametrize("override, message", [
    ("set.train.epochs=2", 'sweep: set.train: a table is not a value; quote each whole dotted key: "train.epochs" = '
                           '2, or --set \'set."train.epochs"=2\''),
    ("train.epochs=2", "unknown key 'sweep.train': a sweep's --set sets the sweep file's keys; set train.epochs for "
                       "every run with --set 'set.\"train.epochs\"=...'"),
])
def test_a_misused_set_of_the_sweep_command_is_told_the_set_to_write(sweep_files, capsys, override, message):
    """The command line's spelling of the overrides load_sweep is told of in Python (the test above)."""
    assert main(["sweep", str(sweep_files(BASE, SWEEP)), "--dry-run", "--set", override]) == 2
    assert capsys.readouterr().err == f"spikecl: error: {message}\n"


@pytest.mark.parametrize("grid, label", [
    ('"train.lr" = [0.05]', "lr=0.05"),                  # the base runs lr 0.1: the one point changes the run
    ('"train.lr" = [0.1]', "base"),                      # the base's own value: the base run
    ('"strategy.ewc.lam" = [1.0]', "base"),              # another method's option: finetune's run is the base's
])
def test_a_one_point_grid_is_labelled_base_only_when_it_is_the_base_run(sweep_files, grid, label):
    methods = SWEEP.replace('["finetune"]', '["finetune", "ewc"]') if "ewc" in grid else SWEEP   # ewc reads it
    for extra in ("", 'select = "acc"\n'):
        sweep = load_sweep(sweep_files(BASE, methods + extra + f"[grid]\n{grid}\n"))
        assert list(sweep.candidates["finetune"]) == [label]
        assert [run.id for run in sweep.runs if "finetune" in run.id] == ([] if extra else [f"{label}/finetune-seed0"])
        if not extra:
            assert sweep.runs[0].results == sweep.folder / label / "finetune-seed0.h5"


def test_a_ray_address_without_a_cluster_is_a_one_line_error(monkeypatch):
    """``--address`` with nothing to join (or ``ray://`` without Ray's client) is one line naming the address, and a
    local instance's CPU count beside ``--address`` is refused rather than ignored."""
    ray = pytest.importorskip("ray")

    def no_cluster(**options):
        os.environ["RAY_HALF_STARTED"] = "1"                       # what a start that fails half-way may leave
        raise ConnectionError("Could not find any running Ray instance.\nmore lines")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_cluster)
    with pytest.raises(ConfigError, match=r"^address auto: no Ray cluster to join \(ConnectionError: Could not "
                                          r"find any running Ray instance.\)$"):
        sweep_ray.start_ray("auto")
    assert "RAY_HALF_STARTED" not in os.environ and not sweep_ray._ENVIRONMENT_BEFORE_RAY   # as it found them
    with pytest.raises(ConfigError, match="^num_cpus 2 sizes a local Ray instance; the cluster at address "
                                          "head:6379 has its own CPUs: drop one of the two$"):
        sweep_ray.start_ray("head:6379", 2)
    with command_line(), pytest.raises(ConfigError, match="^--num-cpus 2 sizes a local Ray instance; the cluster at "
                                                        "--address head:6379 has its own CPUs: drop one of the two$"):
        sweep_ray.start_ray("head:6379", 2)

    def no_client(**options):
        raise ValueError("Ray Client requires pip package `ray[client]`. If you installed the minimal Ray ...")

    monkeypatch.setattr(ray, "init", no_client)
    monkeypatch.setattr(sweep_ray, "_check_reachable", lambda address: None)
    with pytest.raises(ConfigError, match=r"^address ray://head:10001: Ray's client is not installed; install it "
                                          r"with pip install 'ray\[client\]'"):
        sweep_ray.start_ray("ray://head:10001")
    with command_line(), pytest.raises(ConfigError, match=r"^--address ray://head:10001: Ray's client is not"):
        sweep_ray.start_ray("ray://head:10001")


def test_a_host_port_address_where_nothing_listens_is_refused_rather_than_retried_for_ever(sweep_files, capsys):
    """ray.init retries a host:port with no cluster for ever, deaf to SIGTERM: the address is probed first."""
    import socket

    pytest.importorskip("ray")
    with socket.socket() as probe:                    # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["sweep", str(sweep_files(BASE, SWEEP)), "--no-progress", "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"spikecl: error: --address 127.0.0.1:{port}: no Ray cluster to join (nothing accepts a "
                   "connection there: Connection refused)")


def test_num_cpus_beside_an_address_is_refused_before_planning_even_in_a_dry_run(capsys):
    from spikecl.cli import main

    for extra in ([], ["--dry-run"]):
        assert main(["sweep", "models/sweeps/pmnist5k_lr.toml", "--address", "auto", "--num-cpus", "2", *extra]) == 2
        out, err = capsys.readouterr()
        assert err == ("spikecl: error: --num-cpus 2 sizes a local Ray instance; the cluster at --address auto has "
                       "its own CPUs: drop one of the two\n") and out == ""


def test_the_documented_address_commands_are_not_refused_for_the_sweep_files_num_cpus(monkeypatch, tmp_path,
                                                                                        capsys):
    """``spikecl sweep models/sweeps/pmnist5k_lr.toml --address auto`` (docs/distributed.md): the file's
    ``num_cpus = 2`` sizes a local instance only, so the command goes on to join the cluster (none here)."""
    from pathlib import Path

    from spikecl.cli import main

    ray = pytest.importorskip("ray")
    joined = []

    def no_cluster(**options):
        joined.append(options.get("address"))
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_cluster)
    shipped = Path(__file__).resolve().parents[1] / "models" / "sweeps" / "pmnist5k_lr.toml"
    for extra in ([], ["--set", "cpus_per_run=3"]):          # a cluster's CPUs, not the file's 2, bound a run's
        assert main(["sweep", str(shipped), "--address", "auto", "--set", f"output_dir={str(tmp_path)!r}",
                     "--no-progress", *extra]) == 2
        assert "--address auto: no Ray cluster to join" in capsys.readouterr().err and joined[-1] == "auto"


def test_a_sweep_trains_a_damaged_results_file_again_and_refuses_a_foreign_one(tmp_path):
    """As ``spikecl run --resume``: a damaged file is trained again (None), another tool's HDF5 file is a
    one-line error unless --overwrite."""
    import h5py

    damaged, foreign = tmp_path / "damaged.h5", tmp_path / "foreign.h5"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with h5py.File(foreign, "w") as f:
        f["my_data"] = [1, 2, 3]
    assert sweep_ray.kept_result(damaged, overwrite=False) is None
    with pytest.raises(ConfigError, match=f"^{foreign} is not a spikecl results file .*; pass overwrite=True to "
                                          "replace it, or choose another output folder$"):
        sweep_ray.kept_result(foreign, overwrite=False)
    with command_line(), pytest.raises(ConfigError, match="; pass --overwrite to replace it, or choose another output "
                                                        "folder$"):
        sweep_ray.kept_result(foreign, overwrite=False)
    assert sweep_ray.kept_result(foreign, overwrite=True) is None


def test_the_dry_run_states_of_damaged_foreign_and_folder_results(sweep_files, monkeypatch, capsys):
    """A damaged results file: "replaced", unless its checkpoint was made with other settings (the real run refuses
    that); another tool's file: refused, with --overwrite "replaced"; a folder: refused before any work."""
    import h5py

    path = sweep_files(BASE, SWEEP)
    [run] = load_sweep(path).runs
    run.results.parent.mkdir(parents=True, exist_ok=True)
    run.results.write_bytes(b"garbage")
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("replaced  ")
    leave_stale_checkpoint(run)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("differs (checkpoint: train.epochs)  ")
    checkpoint_path(run.results).unlink()
    run.results.unlink()
    with h5py.File(run.results, "w") as f:
        f["x"] = [1, 2]
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "is not a spikecl results file" in capsys.readouterr().err
    assert main(["sweep", str(path), "--dry-run", "--overwrite"]) == 0
    assert capsys.readouterr().out.startswith("replaced  ")
    run.results.unlink()
    run.results.mkdir()
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    for extra in (["--dry-run"], ["--no-progress"]):
        assert main(["sweep", str(path), *extra]) == 2
        assert capsys.readouterr().err == f"spikecl: error: {run.results} is a folder where a results file goes; " \
                                          "move it away\n"


def test_a_folder_at_a_final_results_path_is_refused_before_the_trials(sweep_files, monkeypatch, capsys):
    from spikecl.continual.sweep import final_paths

    path = sweep_files(BASE, SELECT)
    [final] = final_paths(load_sweep(path))
    assert final.parent.name == "final" and final.name == "finetune-seed0.h5"    # seeds; trials: select_seeds
    final.mkdir(parents=True)
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("trials started before the refusal"))
    for extra in (["--dry-run"], ["--no-progress"]):
        assert main(["sweep", str(path), *extra]) == 2
        assert capsys.readouterr().err == (f"spikecl: error: {final} is a folder where a results file goes; move it "
                                           "away\n")


def test_a_second_sweep_into_the_same_folder_is_refused_while_the_first_runs(sweep_files, monkeypatch, capsys):
    """Two sweeps of one folder at once would both write its summary, the later one naming the other's runs as
    failed: while one holds the sweep's lock a second stops in one line before any run; a dry run still looks."""
    from spikecl.atomic import output_lock
    from spikecl.continual.sweep import sweep_dir

    path = sweep_files(BASE, SWEEP)
    summary = sweep_dir(load_sweep(path)) / "sweep.h5"
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("runs started beside another sweep"))
    with output_lock(summary):
        assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
        err = capsys.readouterr().err
        assert err == (f"spikecl: error: another spikecl sweep (PID {os.getpid()}) is writing {summary}; wait for it "
                       "to end or give the sweep another name or output_dir\n")
        assert main(["sweep", str(path), "--dry-run"]) == 0


def test_a_missing_dataset_is_refused_before_the_trials(sweep_files, monkeypatch, capsys, tmp_path):
    path = sweep_files(BASE, SWEEP + f'[grid]\n"data.data_dir" = ["", "{tmp_path / "missing"}"]\n'
                                     '"data.dataset" = ["mnist"]\n')
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("trials started before the refusal"))
    for extra in (["--dry-run"], ["--no-progress"]):
        assert main(["sweep", str(path), *extra]) == 2
        assert capsys.readouterr().err.startswith(f"spikecl: error: mnist not found under {tmp_path / 'missing'}: ")
        assert not (tmp_path / "results").exists()                # a refused sweep leaves no folder behind


def test_the_datasets_looked_for_are_those_each_run_reads_its_variant_applied(sweep_files, monkeypatch, capsys,
                                                                               tmp_path):
    missing = f'"data.dataset" = "mnist"\n"data.data_dir" = "{tmp_path / "missing"}"\n'
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("trials started before the refusal"))
    for base_data, variant_data, refused in ((missing, '"data.dataset" = "digits"\n"data.data_dir" = ""\n', False),
                                              ("", missing, True)):
        exp = BASE.replace('dataset = "digits"\n', 'dataset = "digits"\n' if not base_data else
                           f'dataset = "mnist"\ndata_dir = "{tmp_path / "missing"}"\n')
        path = sweep_files(exp + f'[variants.v]\nmethod = "finetune"\n{variant_data}',
                           SWEEP.replace('methods = ["finetune"]', 'methods = ["v"]')
                           + '[grid]\n"train.lr" = [0.05]\n')
        assert main(["sweep", str(path), "--dry-run"]) == (2 if refused else 0)
        out, err = capsys.readouterr()
        assert ("mnist not found under" in err) == refused and ("to run" in out) != refused, (out, err)


def test_final_paths_cover_methods_that_run_no_trial(sweep_files):
    """A grid over EWC's lam leaves finetune one candidate and no trial: its final results file is still checked
    before the trials (it was met only after them)."""
    from spikecl.continual.sweep import final_paths

    path = sweep_files(BASE, SWEEP.replace('methods = ["finetune"]', 'methods = ["finetune", "ewc"]') +
                       'select = "acc"\nselect_seeds = [3]\n[grid]\n"strategy.ewc.lam" = [1.0, 10.0]\n')
    sweep = load_sweep(path)
    assert {r.method for r in sweep.runs} == {"ewc"}
    assert sorted(p.name for p in final_paths(sweep)) == ["ewc-seed0.h5", "finetune-seed0.h5"]


def test_an_output_folder_that_cannot_be_written_is_refused_before_ray_starts(sweep_files, monkeypatch, capsys,
                                                                              tmp_path):
    """A read-only output folder (os.access stands in: root ignores modes) and a file where the output folder
    goes are one-line errors of the dry run and of the sweep, before Ray starts."""
    import os

    path = sweep_files(BASE, SWEEP + '[grid]\n"train.lr" = [0.05]\n')
    out = sweep_ray.sweep_dir(load_sweep(path))
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    for extra in (["--dry-run"], ["--no-progress"]):
        assert main(["sweep", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"spikecl: error: sweep output: folder {out}") and err.endswith(" is not writable\n")
        assert err.count("\n") == 1
    monkeypatch.undo()
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("a file where the sweep's folder goes")
    assert main(["sweep", str(path), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"spikecl: error: sweep output: folder {out}: {out} is not a folder\n"


def test_a_selecting_sweep_checks_its_final_folder_before_any_trial(sweep_files, monkeypatch, capsys):
    path = sweep_files(BASE, SELECT)
    final = sweep_ray.sweep_dir(load_sweep(path)) / "final"
    final.parent.mkdir(parents=True, exist_ok=True)
    final.write_text("a file where the final runs go")
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("trials started before the refusal"))
    assert main(["sweep", str(path), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"spikecl: error: sweep output: folder {final}: {final} is not a folder\n"


def test_the_dry_run_of_a_complete_sweep_needs_no_writable_folder(sweep_files, inline_ray, monkeypatch, capsys):
    """A dry run writes nothing: a complete sweep's is answered in a read-only folder (os.access stands in)."""
    import os

    path = sweep_files(BASE, SWEEP + '[grid]\n"train.lr" = [0.05]\n')
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("complete  ")


def test_a_local_sweep_refuses_more_threads_per_run_than_four_per_cpu(sweep_files, tmp_path, monkeypatch, capsys):
    """cpus_per_run sets each run's threads: thousands on a local instance exhaust the process limit."""
    from spikecl.config import MAX_THREADS

    class Local(InlineRay):
        def cluster_resources(self):
            return {"CPU": 10 * MAX_THREADS}

    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: (Local(), True))
    path = sweep_files(BASE, SWEEP)
    assert main(["sweep", str(path), "--no-progress", "--set", f"num_cpus={10 * MAX_THREADS}",
                 "--set", f"cpus_per_run={MAX_THREADS + 1}"]) == 2
    assert f"cpus_per_run = {MAX_THREADS + 1} gives each run {MAX_THREADS + 1} threads, more than {MAX_THREADS} " \
           "(4 per CPU of this machine)" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.h5"))


def test_a_run_name_too_long_for_the_file_system_is_refused_before_ray_starts(sweep_files, monkeypatch, capsys):
    """A variant's results name that fits, but whose .diverged record or checkpoint's temporary file would not, is
    refused before any run (a run refused in its worker would leave the others training, a divergence unrecorded)."""
    name = "v" * 226                                           # v...v-seed0.h5.diverged's temporary file: 258 bytes
    base = BASE.replace('methods = ["finetune"]\n', f'methods = ["{name}"]\n[variants.{name}]\nmethod = "ewc"\n')
    path = sweep_files(base, SWEEP.replace('methods = ["finetune"]\n', f'methods = ["{name}"]\n'))
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
    assert "is too long for its file system (258 bytes with the suffixes of the files written from it" in \
        capsys.readouterr().err


def test_the_longest_run_name_a_sweep_accepts_trains(sweep_files, inline_ray, capsys):
    """A name the sweep's check passes is not refused in the run's worker (its checkpoint's name included)."""
    name = "v" * 223                               # v...v-seed0.h5.diverged's temporary file: 255 bytes, the limit
    base = BASE.replace('methods = ["finetune"]\n', f'methods = ["{name}"]\n[variants.{name}]\nmethod = "ewc"\n')
    path = sweep_files(base, SWEEP.replace('methods = ["finetune"]\n', f'methods = ["{name}"]\n'))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0, capsys.readouterr().err
    assert [p.name for p in path.parent.rglob("*-seed0.h5")] == [f"{name}-seed0.h5"]


@pytest.mark.parametrize("method, grid", [("single", '"strategy.ewc.lam" = [1.0, 2.0]'),
                                          ("final seed", '"train.lr" = [0.05, 0.1]')])
def test_a_final_run_name_too_long_is_refused_before_the_trials(sweep_files, monkeypatch, capsys, method, grid):
    """A selecting sweep's final runs are named before any trial trains: a method with one candidate (no trial) and
    final seeds longer than the trials' are checked too."""
    name = "v" * (240 if method == "single" else 223)
    seeds = "seeds = [0]" if method == "single" else "seeds = [1000000000]"
    base = BASE.replace('methods = ["finetune"]\n', f'methods = ["ewc"]\n[variants.{name}]\nmethod = "finetune"\n')
    methods = f'["ewc", "{name}"]' if method == "single" else f'["{name}"]'
    sweep = SWEEP.replace('methods = ["finetune"]\n', f"methods = {methods}\n").replace("seeds = [0]", seeds)
    path = sweep_files(base, sweep + f'select = "acc"\nselect_seeds = [3]\n[grid]\n{grid}\n')
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
    assert "-seed" in (err := capsys.readouterr().err) and "is too long for its file system" in err


def test_recorded_options_are_read_as_recorded_where_a_method_cannot_be_imported(monkeypatch):
    """Reading results needs neither torch nor snnTorch: where a strategy's module fails to import (torch missing
    or broken, snnTorch missing), a recorded options table is compared as it is, not a traceback."""
    from spikecl.continual import strategies
    from spikecl.errors import DependencyError

    options = {"replay": {"per_class": 5, "phase_lr": 0.5}}
    for failure in (ImportError("libcudnn.so.9: cannot open shared object file"),
                    DependencyError("snntorch is not installed")):
        def broken(name, failure=failure):
            raise failure
        monkeypatch.setattr(strategies, "strategy_class", broken)
        assert strategies.as_read("replay", options) == options


def test_the_comparison_plot_names_three_failed_runs_and_counts_the_others(sweep_files, inline_ray, fail_runs,
                                                                          monkeypatch):
    """A sweep with four failed runs draws its plot with a note naming the first three (sorted) and counting one."""
    path = sweep_files(BASE, SWEEP.replace("seeds = [0]", "seeds = [0, 1, 2, 3, 4]"))
    fail_runs({f"base/finetune-seed{s}": 1 for s in range(1, 5)})
    notes = []
    monkeypatch.setattr(plots, "plot_method_comparison", lambda summary, target, **kw: notes.append(kw["note"]))
    assert main(["sweep", str(path), "--no-progress"]) == 1
    assert notes == ["not drawn, failed: base/finetune-seed1, base/finetune-seed2, base/finetune-seed3 and 1 more"]


def test_a_sweep_whose_every_run_failed_removes_an_earlier_comparison_plot(sweep_files, inline_ray, fail_runs,
                                                                           capsys):
    """Nothing to draw: the plot an earlier sweep of this folder left would pass for this one's, so it is removed."""
    path = sweep_files(BASE, SWEEP)
    plot = load_sweep(path).folder / "sweep-comparison.png"
    plot.parent.mkdir(parents=True)
    plot.write_bytes(b"an earlier sweep's plot")
    fail_runs({"base/finetune-seed0": 1})
    assert main(["sweep", str(path), "--no-progress"]) == 1
    assert "sweep edges: 0/1 runs complete" in capsys.readouterr().out
    assert not plot.exists()


def test_a_selecting_sweep_refuses_a_folder_at_its_final_comparison_plot_before_any_trial(sweep_files, monkeypatch,
                                                                                         capsys):
    """The final runs' plot (``final/sweep-comparison.png``) is checked with the trials' before anything trains."""
    path = sweep_files(BASE, SELECT)
    plot = load_sweep(path).folder / "final" / "sweep-comparison.png"
    plot.mkdir(parents=True)
    monkeypatch.setattr(sweep_ray, "start_ray", lambda *a, **k: pytest.fail("trials started before the refusal"))
    for extra in (["--dry-run"], ["--no-progress"]):
        assert main(["sweep", str(path), *extra]) == 2
        assert capsys.readouterr().err == (f"spikecl: error: {plot} is a folder where the sweep's comparison plot "
                                           "goes; move it away\n")
    assert main(["sweep", str(path), "--dry-run", "--no-plots"]) == 0


def test_a_trial_counts_as_diverged_by_its_last_attempt():
    """A trial whose last attempt diverged is an outcome; one that diverged, then failed otherwise, is a failure."""
    assert diverged(["InjectedFailure: injected failure on attempt 1", "NumericalError: training loss is nan"])
    assert not diverged(["NumericalError: training loss is nan", "InjectedFailure: injected failure on attempt 2"])


def test_overwrite_removes_only_the_final_runs_of_methods_left_without_a_point(sweep_files, inline_ray, fail_runs,
                                                                               capsys):
    """EWC's new points all diverge: its old final run is removed, saying so; finetune's (one candidate) is not."""
    path = sweep_files(BASE, SWEEP.replace('methods = ["finetune"]', 'methods = ["finetune", "ewc"]') +
                       'select = "acc"\nselect_seeds = [3]\n[grid]\n"strategy.ewc.lam" = [1.0, 2.0]\n')
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    final = load_sweep(path).folder / "final"
    capsys.readouterr()
    fail_runs({"ewc.lam=3.0/ewc-seed3": 1, "ewc.lam=4.0/ewc-seed3": 1}, NumericalError)
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--overwrite",
                 "--set", 'grid."strategy.ewc.lam"=[3.0, 4.0]']) == 1
    out = capsys.readouterr().out
    assert f"removed {final / 'ewc-seed0.h5'}: made with other settings" in out and "finetune-seed0.h5:" not in out
    assert not (final / "ewc-seed0.h5").exists() and not replacing(final / "ewc-seed0.h5").exists()
    assert (final / "finetune-seed0.h5").exists()


def test_a_sweep_of_the_base_point_alone_names_its_rows_by_method(sweep_files, inline_ray):
    """No point changes the runs: the summary's rows are the methods alone, with no "@ base" label."""
    path = sweep_files(BASE, SWEEP)
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    text = (load_sweep(path).folder / "sweep-summary.txt").read_text()
    assert "@" not in text and [line.split()[:2] for line in text.splitlines()][4] == ["finetune", "1"]


def test_a_selecting_sweep_whose_final_run_failed_exits_with_1(sweep_files, inline_ray, fail_runs, capsys):
    """Every trial complete, a final run FAILED: the final report lists it and the command exits with 1."""
    path = sweep_files(BASE, SELECT)
    fail_runs({"final/finetune-seed0": 1})
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 1
    out = capsys.readouterr().out
    assert "sweep edges: 2/2 runs complete" in out and "sweep edges/final: 0/1 runs complete" in out
    assert "FAILED final/finetune-seed0 after 1 attempt(s): InjectedFailure" in out


def test_a_selecting_sweep_with_nothing_to_choose_writes_only_its_final_summary(sweep_files, inline_ray, capsys):
    """One candidate per method: no trial runs, so no trials' summary (an empty 0/0 table) beside the final one."""
    path = sweep_files(BASE, SELECT.replace('"train.lr" = [0.05, 0.1]', '"train.lr" = [0.05]'))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    folder = load_sweep(path).folder
    assert "sweep edges/final: 1/1 runs complete" in capsys.readouterr().out
    assert (folder / "final" / "sweep.h5").exists() and not (folder / "sweep.h5").exists()
    assert not (folder / "sweep-summary.txt").exists()


def test_a_stop_swallowed_while_the_trials_train_starts_no_final_run(sweep_files, inline_ray, monkeypatch, capsys):
    """A Ctrl-C whose KeyboardInterrupt CPython swallowed (in an import lock's callback) while the driver waited on
    the trial runs: the sweep used to select a point, train its final run and exit 130 only then; now it stops at
    its next look at the runs, with its own message, and trains nothing more."""
    path = sweep_files(BASE, SELECT)
    real, trained, waits = sweep_ray.train_run, [], []

    def in_worker(raw, *args):                   # a Ray worker is another process, with a flag of its own
        trained.append(raw.get("name"))
        with monkeypatch.context() as worker:
            worker.setattr(errors, "_stop_signalled", False)
            return real(raw, *args)

    def swallowing_wait(self, refs, num_returns=1, timeout=None):
        waits.append(timeout)
        if len(waits) == 1:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:            # as CPython does in such a callback
                pass
        return refs[:num_returns], refs[num_returns:]

    monkeypatch.setattr(sweep_ray, "train_run", in_worker)
    monkeypatch.setattr(InlineRay, "wait", swallowing_wait)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(trained) == 2 and "final" not in trained[-1]
    assert capsys.readouterr().err.endswith("spikecl: sweep interrupted; run the same command again to train only "
                                            "the missing runs\n")



def test_a_sweeps_report_redraws_the_very_plot_the_sweep_drew(sweep_files, inline_ray, capsys):
    """``spikecl report`` of a sweep's folder draws its ``sweep-comparison.png`` again; it used to draw another plot
    there (another title, "± 0" bars on cells over one seed, no failed runs named). Now the same bytes."""
    path = sweep_files(BASE, SWEEP + '[grid]\n"train.lr" = [0.05, 0.1]\n')
    assert main(["sweep", str(path), "--no-progress"]) == 0
    folder = sweep_dir(load_sweep(path))
    drawn = (folder / "sweep-comparison.png").read_bytes()
    (folder / "sweep-comparison.png").unlink()
    assert main(["report", str(folder)]) == 0
    assert (folder / "sweep-comparison.png").read_bytes() == drawn


def test_a_learning_rate_grid_is_drawn_as_lines_with_each_methods_chosen_rate_ringed(sweep_files, inline_ray,
                                                                                      monkeypatch, capsys):
    """A selecting sweep's trials over three rates or more were drawn as one bar per method and rate (35 bars
    and a legend of 35 entries for five methods on seven rates): now each method is a line against the rate, its
    chosen rate (selection.json's) ringed; the final runs, one rate per method, stay bars. A report redraws the
    trials' plot alike from sweep.h5."""
    path = sweep_files(BASE, SELECT.replace('methods = ["finetune"]', 'methods = ["finetune", "ewc"]')
                       .replace("[0.05, 0.1]", "[0.02, 0.05, 0.1]"))
    drawn = []
    real = plots.plot_setting_curves
    monkeypatch.setattr(plots, "plot_setting_curves",
                        lambda curves, key, target, **kw: drawn.append((curves, key, kw)) or real(curves, key, target,
                                                                                                    **kw))
    monkeypatch.setattr(plots, "plot_method_comparison",
                        lambda summary, target, **kw: drawn.append(sorted(summary)) or target)
    assert main(["sweep", str(path), "--no-progress"]) == 0
    folder = sweep_dir(load_sweep(path))
    selection = json.loads((folder / "selection.json").read_text())["methods"]
    (curves, key, unmarked), (_, _, kw), final = drawn            # the trials' report, then with their choice
    assert unmarked["chosen"] == {} and key == "train.lr" and sorted(curves) == ["ewc", "finetune"]
    assert all(sorted(points) == [0.02, 0.05, 0.1] for points in curves.values())
    summary = json.loads(read_run(folder / "sweep.h5", "sweep").attrs["summary"])
    assert {k: v[0] for k, v in curves["ewc"][0.05].items()} == {k: summary["ewc @ lr=0.05"][k][0]
                                                                 for k in ("acc", "bwt")}
    assert kw["chosen"] == {m: selection[m]["overrides"]["train.lr"] for m in ("finetune", "ewc")}
    assert kw["title"] == "sweep edges: ACC and BWT against train.lr (validation split)"
    assert final == [f"{m} @ train.lr = {selection[m]['overrides']['train.lr']:g}" for m in ("ewc", "finetune")]
    image = (folder / "sweep-comparison.png").read_bytes()
    (folder / "sweep-comparison.png").unlink()
    assert main(["report", str(folder)]) == 0
    assert (folder / "sweep-comparison.png").read_bytes() == image
    assert [entry[2]["chosen"] for entry in drawn[3:] if isinstance(entry, tuple)] == [kw["chosen"]]


def test_a_joint_search_is_drawn_as_a_grid_with_the_chosen_cell_outlined(sweep_files, inline_ray, monkeypatch):
    """A rate searched jointly with EWC's λ: one panel over both, the cell selection.json chose outlined."""
    path = sweep_files(BASE, SELECT.replace('methods = ["finetune"]', 'methods = ["ewc"]')
                       + '"strategy.ewc.lam" = [1.0, 3.0]\n')
    drawn = []
    real = plots.plot_setting_grids
    monkeypatch.setattr(plots, "plot_setting_grids",
                        lambda grids, target, **kw: drawn.append((grids, kw)) or real(grids, target, **kw))
    monkeypatch.setattr(plots, "plot_method_comparison", lambda summary, target, **kw: target)
    assert main(["sweep", str(path), "--no-progress"]) == 0
    choice = json.loads((sweep_dir(load_sweep(path)) / "selection.json").read_text())["methods"]["ewc"]["overrides"]
    (_, unmarked), (grids, kw) = drawn                            # the trials' report, then with their choice
    assert unmarked["chosen"] == {}
    assert grids["ewc"][0] == ("train.lr", "strategy.ewc.lam") and len(grids["ewc"][1]) == 4
    assert kw["chosen"] == {"ewc": (choice["train.lr"], choice["strategy.ewc.lam"])}
    assert (sweep_dir(load_sweep(path)) / "sweep-comparison.png").stat().st_size > 0


def test_a_grid_point_of_one_class_per_task_is_refused_when_planned(sweep_files, capsys):
    """Its first task would train nothing: refused before Ray starts, as a run of it is (a dry run listed it as
    one to run, and its Ray worker failed after the other points had trained)."""
    base = BASE.replace('kind = "permuted"\n', 'kind = "split"\nscenario = "class"\n').replace("n_tasks = 2\n",
                                                                                              "n_tasks = 5\n")
    path = sweep_files(base, SWEEP + '[grid]\n"stream.n_tasks" = [5, 10]\n')
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "stream.n_tasks: 10 tasks of 10 classes: one class per task gives the first task a one-output head" in \
        capsys.readouterr().err


def test_a_diverged_run_is_not_tried_again_and_its_record_is_named_where_it_is_kept(sweep_files, inline_ray,
                                                                                     fail_runs, capsys):
    """Divergence is an outcome of the run's settings (its checkpoint and seed would diverge again): no retry, even
    with max_retries; a later sweep says the failure is the kept record's, and the report of the point's folder
    names the run as diverged, not as an unfinished run to resume."""
    path = sweep_files(BASE, SWEEP.replace("max_retries = 0", "max_retries = 2"))
    fail_runs({"base/finetune-seed0": 3}, NumericalError)
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 1
    out = capsys.readouterr().out
    assert "FAILED base/finetune-seed0 after 1 attempt(s): NumericalError" in out and "retry" not in out, out
    [run] = load_sweep(path).runs
    assert sweep_ray.divergence_file(run.results).is_file()
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 1
    assert ("last error: NumericalError: injected failure on attempt 1 (diverged with these settings before, "
            "recorded in finetune-seed0.h5.diverged: not trained again)") in capsys.readouterr().out
    checkpoint_path(run.results).write_bytes(b"")                # what a run that diverged in its second task leaves
    assert main(["report", str(run.results.parent), "--no-plots"]) == 2
    said = "".join(capsys.readouterr())
    assert (f"not reported: {run.results} diverged (NumericalError: injected failure on attempt 1; recorded in "
            "finetune-seed0.h5.diverged: the same settings diverge again)") in said and "--resume" not in said


def test_a_crash_in_code_of_ones_own_is_tried_again_not_recorded_as_diverged(sweep_files, inline_ray, monkeypatch,
                                                                              capsys):
    """A plugin's method that raises (its own code, named by the run's error) crashed: it was read as a diverged
    run, never tried again and skipped by later sweeps as an outcome of its settings."""
    from spikecl.continual.strategy import Strategy

    def crash(self, task, train):
        raise RuntimeError("boom")

    monkeypatch.setattr(Strategy, "after_task", crash)
    path = sweep_files(BASE, SWEEP.replace("max_retries = 0", "max_retries = 1"))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 1
    out = capsys.readouterr().out
    assert "retry  base/finetune-seed0 (attempt 2 of 2): PluginCrash: RuntimeError: boom (raised in " in out, out
    assert "FAILED base/finetune-seed0 after 2 attempt(s): PluginCrash: RuntimeError: boom" in out
    [run] = load_sweep(path).runs
    assert not sweep_ray.divergence_file(run.results).exists()


@pytest.mark.parametrize("failure, attempts", [(errors.DataError, 1), (RuntimeError, 3)])
def test_only_failures_another_attempt_can_mend_are_tried_again(sweep_files, inline_ray, fail_runs, capsys,
                                                                failure, attempts):
    """A run failing on its settings or files (a spikecl error: a missing dataset, a setting a plugin refuses) would
    fail alike again: it is reported at once; a crash (a lost worker, an out-of-memory kill) is tried again."""
    path = sweep_files(BASE, SWEEP.replace("max_retries = 0", "max_retries = 2"))
    fail_runs({"base/finetune-seed0": 3}, failure)
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 1
    out = capsys.readouterr().out
    assert out.count("retry  base/finetune-seed0") == attempts - 1, out
    assert f"FAILED base/finetune-seed0 after {attempts} attempt(s): {failure.__name__}: injected failure" in out
    assert ("(not tried again: the same settings and files fail alike)" in out) == (attempts == 1), out


@pytest.mark.parametrize("grid, message", [
    ('"train.lr" = ["fast", 0.05]', r"\[grid\] point lr=fast: train.lr: expected a number, got 'fast'$"),
    ('"train.lrr" = [0.01, 0.05]', r"\[grid\] point lrr=0.01: unknown key 'train.lrr'; allowed keys: "),
    ('"strategy.ewc.lam" = [1.0, 2.0]', r': grid."strategy.ewc.lam": no run of this sweep uses ewc '
                                        r"\(strategy.methods: finetune\), so it would change nothing$"),
])
def test_a_grid_value_no_run_can_take_or_reads_is_refused_naming_the_grid(sweep_files, grid, message):
    """A bad value or key of the grid names the grid's point (the base's own faults are the base file's); a grid
    that changes no run (an option only another method reads) would run one point as many."""
    with pytest.raises(ConfigError, match=message):
        load_sweep(sweep_files(BASE, SWEEP + f"[grid]\n{grid}\n"))


def test_a_method_option_no_run_of_the_sweep_reads_is_refused_as_run_refuses_it(sweep_files):
    """A sweep took an option of a method it does not run, in [set], in a grid beside a key its runs read (the
    values merged into one point, its folders named by them) or in points, where `spikecl run --set` refuses it."""
    two = SWEEP.replace('["finetune"]', '["finetune", "ewc"]')
    for sweep, where in ((SWEEP + '[set]\n"strategy.si.c" = 7.0\n', 'set."strategy.si.c"'),
                         (SWEEP + '[grid]\n"strategy.ewc.lam" = [1.0, 10.0]\n"train.lr" = [0.1, 0.2]\n',
                          'grid."strategy.ewc.lam"'),
                         (two + '[grid]\n"strategy.ewc.lam" = [1.0, 10.0]\n"strategy.si.c" = [0.1, 1.0]\n',
                          'grid."strategy.si.c"'),
                         (two + 'points = [{{"strategy.ewc.lam" = 1.0}}, {{"strategy.si.c" = 1.0}}]\n',
                          'points."strategy.si.c"')):
        method = where.split(".")[2]
        with pytest.raises(ConfigError, match=rf"sweep.toml: {re.escape(where)}: no run of this sweep uses {method} "
                                              r"\(strategy.methods: finetune(, ewc)?\), so it would change nothing$"):
            load_sweep(sweep_files(BASE, sweep))
    assert len(load_sweep(sweep_files(BASE, two + '[grid]\n"strategy.ewc.lam" = [1.0, 10.0]\n')).runs) == 3


def test_a_methods_own_fault_is_not_blamed_on_a_grid_point(sweep_files):
    for method, message in (("ewcc", "strategy.methods: unknown method 'ewcc'"),
                            ("ewc+ewc", "strategy.methods: 'ewc+ewc' names 'ewc' twice")):
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
            load_sweep(sweep_files(BASE, SWEEP.replace('["finetune"]', f'["{method}"]')
                                   + '[grid]\n"train.lr" = [0.05, 0.1]\n'))


def test_a_sweep_without_address_starts_its_own_ray_instance_beside_a_running_cluster(monkeypatch):
    """Without ``--address`` the sweep starts a local instance of its own: ``ray.init`` with no address would join a
    cluster ``ray start`` left running on this machine, and refuse the sweep's CPU count ("When connecting to an
    existing cluster, num_cpus and num_gpus must not be provided": every sweep failed while one ran)."""
    ray = pytest.importorskip("ray")
    calls = []

    def started(**options):
        calls.append(options)
        raise RuntimeError("stop here")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", started)
    with pytest.raises(ConfigError, match="^a local Ray instance with 2 CPUs did not start"):
        sweep_ray.start_ray(None, 2)
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2


def test_a_sweep_run_again_with_fewer_methods_keeps_the_summary_of_the_others_unless_overwritten(sweep_files,
                                                                                                   inline_ray, capsys):
    """A selecting sweep run again with one of its two methods rewrote sweep.h5, its table, plot and selection.json
    with that method alone, the other's runs still on disk. Now refused in one line before any run (the summary and
    selection unchanged); --overwrite summarises the narrower sweep; adding a method is not refused."""
    path = sweep_files(BASE, SELECT.replace('methods = ["finetune"]', 'methods = ["finetune", "ewc"]'))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    folder = sweep_dir(load_sweep(path))
    kept = {name: (folder / name).read_bytes() for name in ("sweep.h5", "selection.json", "sweep-summary.txt")}
    capsys.readouterr()
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--set", 'methods=["finetune"]']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spikecl: error: {folder / 'sweep.h5'} summarises runs this sweep does not plan "
                          f"({folder / 'lr=0.05' / 'ewc-seed3.h5'} and 1 more; fewer methods, seeds or points?)")
    assert {name: (folder / name).read_bytes() for name in kept} == kept
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--set", 'methods=["finetune"]',
                 "--overwrite"]) == 0
    assert list(json.loads((folder / "selection.json").read_text())["methods"]) == ["finetune"]
    assert (folder / "lr=0.05" / "ewc-seed3.h5").is_file()                        # the other method's files stay
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0          # more methods: summarised again
    assert sorted(json.loads((folder / "selection.json").read_text())["methods"]) == ["ewc", "finetune"]


def test_the_final_summary_names_a_method_left_without_final_runs(sweep_files, inline_ray, fail_runs, capsys):
    """Every trial of EWC failed on its settings: it gets no final runs, which only the command's output and
    selection.json said; the final stage's summary and report read as if the sweep had planned fine-tuning alone."""
    path = sweep_files(BASE, SWEEP.replace('["finetune"]', '["finetune", "ewc"]') + 'select = "acc"\n'
                       + '[grid]\n"strategy.ewc.lam" = [1.0, 10.0]\n')
    failing = [run.id for run in load_sweep(path).runs if "ewc" in run.id]
    assert len(failing) == 2
    fail_runs(dict.fromkeys(failing, 3), errors.DataError)
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 1
    final = sweep_dir(load_sweep(path)) / "final"
    line = "No final runs: ewc (every candidate failed its validation trial: see the trials' summary)"
    assert line in (final / "sweep-summary.txt").read_text().splitlines()
    capsys.readouterr()
    assert main(["report", str(final / "sweep.h5"), "--no-plots"]) == 0
    assert line in capsys.readouterr().out


def test_a_points_settings_of_other_methods_are_not_a_rows_plotted_settings(sweep_files):
    """Points setting one key per method ({ewc.lam, si.c}) drew each method as a grid of both keys, one of which it
    does not read, with blank cells for combinations never run: each row keeps the keys its method reads."""
    from spikecl.continual.sweep import point_settings

    points = 'points = [{{"strategy.ewc.lam" = 1.0, "strategy.si.c" = 0.01}}, {{"strategy.ewc.lam" = 30.0, ' \
             '"strategy.si.c" = 1.0, "train.lr" = 0.05}}]\n'
    sweep = load_sweep(sweep_files(BASE, SWEEP.replace('["finetune"]', '["ewc", "si"]') + points))
    settings = sorted((method, sorted(s.items())) for method, s in point_settings(sweep).values())
    assert settings == [("ewc", [("strategy.ewc.lam", 1.0)]), ("ewc", [("strategy.ewc.lam", 30.0), ("train.lr", 0.05)]),
                        ("si", [("strategy.si.c", 0.01)]), ("si", [("strategy.si.c", 1.0), ("train.lr", 0.05)])]
