"""Sweeps: planning (grid × methods × seeds, validated before anything runs) and execution on a local Ray instance
with a retried failure, a permanent failure, and a re-run that trains only what is missing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikecl.cli import main
from spikecl.continual.results import read_continual
from spikecl.continual.sweep import load_sweep, point_label
from spikecl.errors import ConfigError, DataError, ResultsError
from spikecl.io import read_run

BASE = """name = "tiny"
seeds = [0]
[data]
dataset = "digits"
[stream]
kind = "permuted"
n_tasks = 2
train_per_task = 128
test_per_task = 100
[network]
hidden = [16]
[train]
epochs = 1
batch_size = 64
lr = 0.1
[strategy]
methods = ["finetune"]
"""

SWEEP = """base = "base.toml"
name = "grid"
output_dir = "{out}"
methods = ["finetune", "hlop"]
seeds = [0, 1]
max_retries = 1
num_cpus = 2
[set]
"strategy.hlop.neurons" = [[8, 4]]
[grid]
"train.lr" = [0.05, 0.1]
"""
# 6 runs (2 points x 3 seeds); one run fails once, one on every attempt
RUNS = """base = "base.toml"
name = "grid"
output_dir = "{out}"
points = [{{"train.lr" = 0.05}}, {{"train.lr" = 0.1}}]
methods = ["finetune"]
seeds = [0, 1, 2]
max_retries = 1
num_cpus = 2
"""
FAILING = {"lr=0.1/finetune-seed1": 1, "lr=0.05/finetune-seed0": 5}



def test_plan_is_grid_times_methods_times_seeds(sweep_files, tmp_path):
    sweep = load_sweep(sweep_files(BASE, SWEEP))
    assert len(sweep.runs) == 8
    assert sweep.runs[0].id == "lr=0.05/finetune-seed0"
    assert sweep.runs[-1].results == tmp_path / "results" / "grid" / "lr=0.1" / "hlop-seed1.h5"
    assert {r.raw["train"]["lr"] for r in sweep.runs} == {0.05, 0.1}
    assert all(r.raw["strategy"]["hlop"]["neurons"] == [[8, 4]] for r in sweep.runs)
    assert point_label({"strategy.hlop.lr": 1.5, "train.epochs": 2}) == "hlop.lr=1.5_epochs=2"
    # a planned sweep plans any more of its runs as it planned these (selection plans the final runs later)
    assert all(sweep.plan(r.point, r.overrides, r.method, r.seed, "all")[0] == r for r in sweep.runs)


def test_long_point_labels_are_cut_to_unique_folder_names(sweep_files):
    """A point whose label would exceed a folder name's limit (a long schedule) gets its label's start and a hash
    of the whole: two points differing only at the end stay apart, and the plan's paths can be created."""
    long = [[8, 4]] + [[4, 2]] * 60
    points = [{"strategy.hlop.neurons": long + [[4, 2]], "train.lr": 0.05},
              {"strategy.hlop.neurons": long + [[4, 1]], "train.lr": 0.05}]
    labels = [point_label(p) for p in points]
    assert len(set(labels)) == 2 and all(len(label) == 100 for label in labels)
    assert labels[0].startswith("hlop.neurons=-8-4-4-2-4-2-") and re.fullmatch(r".*~[0-9a-f]{8}", labels[0])
    assert point_label({"train.lr": 0.05}) == "lr=0.05"                          # short labels are kept whole
    sweep = load_sweep(sweep_files(BASE, SWEEP.replace('[grid]\n"train.lr" = [0.05, 0.1]\n', "").replace(
        '"strategy.hlop.neurons" = [[8, 4]]\n', "") +
        f'[grid]\n"strategy.hlop.momentum" = [0.5, 0.8]\n"strategy.hlop.neurons" = [{long}]\n'))
    for run in sweep.runs:
        run.results.parent.mkdir(parents=True, exist_ok=True)                   # no "File name too long"
    assert len({r.results.parent for r in sweep.runs if r.method == "hlop"}) == 2


@pytest.mark.parametrize("change, message", [
    ('"train.lr" = [0.05, 0.1]', None),
    ('"train.lr" = []', "grid.train.lr: expected a non-empty list"),
    ('"train.lrate" = [0.1]', "unknown key 'train.lrate'"),
    ('"train.lr" = [-1.0]', "train.lr: -1.0 is below the minimum"),
    ('"strategy.methods" = [["ewc"]]', "grid.strategy.methods: a sweep sets this for every run; use its own 'methods'"),
    ('"seeds" = [[1], [2]]', "grid.seeds: a sweep sets this for every run; use its own 'seeds' key"),
    ('"output_dir" = ["a", "b"]', "grid.output_dir: a sweep sets this"),
    ('"train.lr" = [nan]', "train.lr: expected a finite number, got nan"),     # not "got 'NaN'", a string
    ('train.lr = [0.1, 0.2]', 'grid.train: a table is not a list of values; quote each whole dotted key: '
                              '"train.lr" = \\[0.1, 0.2\\]'),
    ('"network.encoder" = ["dírect😀"]', "network.encoder: 'dírect😀' is not allowed"),
])
def test_bad_grid_values_fail_before_anything_runs(sweep_files, change, message):
    path = sweep_files(BASE, SWEEP.replace('"train.lr" = [0.05, 0.1]', change))
    if message is None:
        load_sweep(path)
        return
    with pytest.raises(ConfigError, match=message):
        load_sweep(path)


def test_sweep_files_that_could_not_mean_what_they_say_are_refused(sweep_files, tmp_path):
    """Keys the sweep sets for every run itself (silently overridden before), a key [set] gives that no experiment
    has (named as the [set]'s), more CPUs per run than the sweep has (it waited for ever), a base that is not a
    continual experiment, a missing sweep file."""
    for change, message in (('[set]\n"seeds" = [5]', "set.seeds: a sweep sets this for every run; use its own 'seeds'"),
                            ('[set]\n"name" = "x"', "set.name: a sweep sets this"),
                            ('[set]\n"train.lr" = 0.5', "set.train.lr: the grid or points vary this key, so no run "
                                                       "would get the set value")):
        with pytest.raises(ConfigError, match=message):
            load_sweep(sweep_files(BASE, SWEEP.replace("[set]", change)))
    with pytest.raises(ConfigError, match=r"sweep.toml \[set\]: unknown key 'points'; allowed keys"):
        load_sweep(sweep_files(BASE, SWEEP.replace("[set]\n", '[set]\npoints = [{{"train.lr" = 0.1}}]\n')))
    with pytest.raises(ConfigError, match=r"^unknown key 'train.lrate'"):       # the base's own: not the [set]'s
        load_sweep(sweep_files(BASE.replace("lr = 0.1", "lrate = 0.1"), SWEEP))
    with pytest.raises(ConfigError, match=r"^unknown key 'train.lrate'"):       # the base's first, [set]'s too
        load_sweep(sweep_files(BASE.replace("lr = 0.1", "lrate = 0.1"),
                               SWEEP.replace("[set]\n", '[set]\npoints = [{{"train.lr" = 0.1}}]\n')))
    with pytest.raises(ConfigError, match="cpus_per_run = 3 is more than num_cpus = 2: no run could start"):
        load_sweep(sweep_files(BASE, SWEEP), ["cpus_per_run=3"])
    with pytest.raises(ConfigError, match="is a 'ca3' experiment; sweeps run continual experiments"):
        load_sweep(sweep_files('kind = "ca3"\n', SWEEP))
    with pytest.raises(ConfigError, match="sweep file not found"):
        load_sweep(tmp_path / "absent.toml")


def test_a_point_may_not_set_a_key_the_sweep_sets_for_every_run(sweep_files):
    """As in [set] and [grid]: seeds, strategy.methods and output_dir in a point are refused, naming the sweep's key."""
    for key, value, own in (("seeds", "[1]", "seeds"), ("strategy.methods", '["ewc"]', "methods"),
                            ("output_dir", '"elsewhere"', "output_dir")):
        text = SWEEP.replace('[grid]\n"train.lr" = [0.05, 0.1]\n', "").replace(
            "[set]", f'points = [{{{{"train.lr" = 0.05}}}}, {{{{"{key}" = {value}}}}}]\n[set]')
        with pytest.raises(ConfigError, match=f"^sweep: points.{key}: a sweep sets this for every run; use its own "
                                              f"'{own}' key$"):
            load_sweep(sweep_files(BASE, text))


def test_a_sweep_without_a_name_is_named_after_its_file(sweep_files, tmp_path):
    """Its runs and summary go to <output_dir>/<the sweep file's stem>/."""
    path = sweep_files(BASE, SWEEP.replace('name = "grid"\n', "")).rename(tmp_path / "lr-study.toml")
    sweep = load_sweep(path)
    assert sweep.name == "lr-study" and sweep.folder == tmp_path / "results" / "lr-study"
    assert sweep.runs[0].results == tmp_path / "results" / "lr-study" / "lr=0.05" / "finetune-seed0.h5"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; the sweep command reuses it."""
    pytest.importorskip("ray")
    from spikecl.continual.sweep_ray import start_ray, stop_ray

    ray, started = start_ray(num_cpus=2)
    yield ray
    if started:
        stop_ray(ray)


@pytest.mark.slow
def test_ray_started_and_stopped_leaves_the_callers_environment_and_sigterm_handler_as_they_were():
    """``ray.init`` sets environment variables (``RAY_*``, ``PYTHONBREAKPOINT``) and its own SIGTERM handler and
    draws from Python's ``random``, and importing Ray replaces ``sys.excepthook``; a sweep run from Python puts all
    back (in a process of its own, so that no other Ray instance is running)."""
    pytest.importorskip("ray")
    script = ("import os, random, signal, sys\n"
              "from spikecl.continual.sweep_ray import start_ray, stop_ray\n"
              "env, handler, hook = dict(os.environ), signal.getsignal(signal.SIGTERM), sys.excepthook\n"
              "random.seed(5)\n"
              "ray, started = start_ray(num_cpus=1)\n"
              "assert started and any(k.startswith('RAY_') for k in os.environ.keys() - env.keys())\n"
              "stop_ray(ray)\n"
              "drawn = random.random()\n"
              "random.seed(5)\n"
              "print(dict(os.environ) == env, signal.getsignal(signal.SIGTERM) is handler, sys.excepthook is hook, "
              "drawn == random.random())\n")
    done = _python(script, timeout=240)
    assert done.stdout.split()[-4:] == ["True"] * 4, done.stdout[-500:] + done.stderr[-2000:]


def test_a_ray_start_interrupted_half_way_stops_what_it_started_and_reads_as_ctrl_c():
    """SIGTERM while ``ray.init`` runs hit Ray's own handler (exit 15, no message), and Ray's agents, whose raylet
    was gone, outlived the sweep (Ctrl-C too): now its processes go and the sweep stops as after Ctrl-C. Stand-ins:
    an agent this process started (its command line Ray's), an orphan naming this process's Ray session folder (an
    agent whose raylet has gone), both killed; an orphan naming another process's session, or only Ray, is left."""
    pytest.importorskip("ray")
    script = ("import os, subprocess, sys, time\n"
              "from spikecl.continual import sweep_ray\n"
              "sleep = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
              "agent = subprocess.Popen(sleep + ['/site/ray/agent.py'])\n"
              "def orphan(arg):\n"
              "    spawn = ('import subprocess as s, sys; '\n"
              "             'print(s.Popen(sys.argv[1:], stdout=s.DEVNULL, stderr=s.DEVNULL).pid)')\n"
              "    return int(subprocess.run([sys.executable, '-c', spawn, *sleep, arg], capture_output=True, "
              "text=True).stdout)\n"
              "ours = orphan(f'/tmp/ray/session_2026-12-05_14-09-44_475123_{os.getpid()}/sockets')\n"
              "others = [orphan(f'/tmp/ray/session_2026-12-05_14-09-44_475123_{os.getpid()}7/x'), "
              "orphan('/other/ray/tail')]\n"
              "time.sleep(0.5)\n"
              "def init(*args):\n"
              "    raise SystemExit(15)\n"
              "sweep_ray._init = init\n"
              "env = dict(os.environ)\n"
              "try:\n"
              "    sweep_ray.start_ray(num_cpus=1)\n"
              "except KeyboardInterrupt:\n"
              "    print('interrupted')\n"
              "agent.wait(10)\n"
              "time.sleep(0.5)\n"
              "alive = lambda pid: open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z' "
              "if os.path.exists(f'/proc/{pid}') else False\n"
              "print(agent.returncode, dict(os.environ) == env, alive(ours), [alive(pid) for pid in others])\n"
              "[os.kill(pid, 9) for pid in others]\n")
    done = _python(script, timeout=120)
    said = done.stdout.strip().split(maxsplit=4)
    assert said == ["interrupted", "-9", "True", "False", "[True, True]"], done.stderr[-2000:]


def _python(script: str, timeout: float) -> subprocess.CompletedProcess:
    """``script`` run by a Python of its own (no Ray instance of this one's in it) on this checkout's spikecl."""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


@pytest.mark.slow
def test_sweep_retries_reports_failures_and_reruns_only_missing_runs(sweep_files, tmp_path, local_ray,
                                                                     capsys, fail_runs, monkeypatch):
    path = sweep_files(BASE, RUNS)
    assert main(["sweep", str(path), "--no-progress", "--set", "num_cpus=0", "--set", "cpus_per_run=3"]) == 2
    assert "cpus_per_run = 3 is more than the 2 CPUs of the Ray cluster: no run could start" in capsys.readouterr().err
    fail_runs(FAILING)
    from spikecl.continual import plots

    drawn, draw = [], plots.plot_method_comparison
    monkeypatch.setattr(plots, "plot_method_comparison", lambda *a, **k: drawn.append(k) or draw(*a, **k))
    assert main(["sweep", str(path), "--no-progress"]) == 1           # one run fails on every attempt
    assert drawn[-1]["title"] == "sweep grid: ACC and BWT per method and point (test split)"
    assert drawn[-1]["note"] == "not drawn, failed: lr=0.05/finetune-seed0"          # the plot says what it lacks
    out = capsys.readouterr().out
    assert "6 runs, 0 complete (kept), 6 to run" in out
    assert "retry  lr=0.1/finetune-seed1 (attempt 2 of 2): InjectedFailure" in out
    assert "FAILED lr=0.05/finetune-seed0 after 2 attempt(s): InjectedFailure" in out
    assert "recovered lr=0.1/finetune-seed1 after 1 failed attempt(s)" in out
    grid = tmp_path / "results" / "grid"
    assert not (grid / "lr=0.05" / "finetune-seed0.h5").exists()
    assert len(list(grid.rglob("*-seed*.h5"))) == 5
    assert main(["report", str(grid / "sweep.h5"), "--no-plots"]) == 0          # the sweep's own results file
    out = capsys.readouterr().out
    assert "sweep grid: 5/6 runs complete" in out and "predate" not in out
    from spikecl.continual.sweep import _record, _summary_text
    from spikecl.io import read_run

    record = _record(read_run(grid / "sweep.h5", "sweep"))
    assert record["metric_definitions"] == "2026-12-06"
    older = _summary_text({**record, "metric_definitions": None})     # as a spikecl of older definitions wrote it
    assert older.endswith("\nNote: written by a spikecl whose metrics predate the definitions of 2026-12-06 (a "
                          "summary stores means, not the runs' matrices); `spikecl report` of its point folders "
                          "computes them again from the runs' files")
    newer = _summary_text({**record, "metric_definitions": "2030-01-01"})
    assert "\nNote: written by a newer spikecl (metric definitions of 2030-01-01; this one's are of 2026-12-06)" \
        in newer
    assert main(["report", str(grid), "--no-plots"]) == 0                       # its folder: the same summary
    out = capsys.readouterr().out
    assert "grid is a sweep: its summaries" in out and "sweep grid: 5/6 runs complete" in out
    assert (grid / "sweep-comparison.png").stat().st_size > 0
    summary = (grid / "sweep-summary.txt").read_text()
    assert "sweep grid: 5/6 runs complete" in summary and re.search(r"finetune @ lr=0\.1 +3 ", summary)
    assert "in % (mean ± std over seeds; a value alone: one seed); BWT < 0 means forgetting" in summary
    assert re.search(r"\nComputed on .+ kernels, fused engine.*, \d+ torch threads?\.", summary)   # as spikecl report
    assert "Made by" not in summary                                   # one commit made every run (else: as report)
    assert "Computed on" not in _summary_text({**record, "legend": ""})         # a summary written before: as then

    # an interruption lost one more run; the re-run (failure injection off) trains exactly the two missing runs
    (grid / "lr=0.1" / "finetune-seed1.h5").unlink()
    assert main(["report", str(grid / "sweep.h5"), "--no-plots"]) == 0      # the summary names the run gone since
    assert ("\nNote: 1 of the 5 runs' files this summary was made from are gone or rewritten since ("
            f"{grid / 'lr=0.1' / 'finetune-seed1.h5'}): its means are not those of the files there") in \
        capsys.readouterr().out
    from spikecl.continual import plots

    notes, compare = [], plots.plot_method_comparison
    monkeypatch.setattr(plots, "plot_method_comparison", lambda *a, **k: notes.append(k["note"]) or compare(*a, **k))
    assert main(["report", str(grid / "sweep.h5")]) == 0                    # its plot says so too
    assert notes[-1].endswith("drawn from the summary: 1 of its runs' files are gone or rewritten since, so these "
                              "means are not those of the files there"), notes
    capsys.readouterr()
    fail_runs({})
    kept = {p: p.stat().st_mtime_ns for p in grid.rglob("*-seed*.h5")}
    killed = grid / ".sweep-summary.txt.x1y2z3.tmp"            # what a sweep killed writing its summary leaves
    killed.write_text("half")
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    assert not killed.exists()                                 # gone once the next sweep of the folder ran
    out = capsys.readouterr().out
    assert "6 runs, 4 complete (kept), 2 to run" in out
    assert sorted(line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("done")) == [
        "lr=0.05/finetune-seed0", "lr=0.1/finetune-seed1"]
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert "sweep grid: 6/6 runs complete" in out
    result = read_continual(grid / "lr=0.05" / "finetune-seed0.h5")
    assert result.config["train"]["lr"] == 0.05 and result.acc_matrix.shape == (3, 2)
    assert np.all(np.isfinite(result.acc_matrix))

    # the base file changed since: kept results made with the old settings are an error, not silently reported as
    # the new sweep's; --dry-run names what differs; --overwrite trains them again
    (tmp_path / "base.toml").write_text(BASE.replace("batch_size = 64", "batch_size = 32"))
    kept = {p: p.stat().st_mtime_ns for p in grid.rglob("*-seed*.h5")}
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "finetune-seed0.h5 was made with other settings than sweep grid plans (train.batch_size differs) " \
           "(and 5 more results file(s)); pass --overwrite" in err
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("differs (train.batch_size)") == 6
    from spikecl.continual.sweep_ray import kept_and_missing     # an --overwrite keeps each old file until replaced

    done, todo = kept_and_missing(load_sweep(path), True, lambda line: None)
    assert not done and len(todo) == 6 and all(p.stat().st_mtime_ns == t for p, t in kept.items())
    from spikecl.continual.sweep_ray import mark_replaced  # before any run: old files and the summary marked ...

    mark_replaced([r.results for r in todo], grid / "sweep.h5")
    assert len(list(grid.rglob("*.replacing"))) == 7
    assert main(["report", str(grid), "--no-plots"]) == 2
    assert "sweep.h5 is still to be replaced by an --overwrite" in capsys.readouterr().out
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--overwrite"]) == 0
    assert "6 runs, 0 complete (kept), 6 to run (6 made with other settings, trained again)" in capsys.readouterr().out
    assert not list(grid.rglob("*.replacing"))              # ... until each is replaced
    assert read_continual(grid / "lr=0.05" / "finetune-seed0.h5").config["train"]["batch_size"] == 32
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    assert "6 runs, 6 complete (kept), 0 to run" in capsys.readouterr().out

    # an --overwrite interrupted before it replaced a file leaves it marked: the sweep refuses to keep it as
    # complete (report would refuse it for good), names --overwrite, and --overwrite trains it again
    marked = grid / "lr=0.05" / "finetune-seed0.h5"
    mark_replaced([marked], grid / "sweep.h5")
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
    assert f"{marked} is still to be replaced by an --overwrite that did not finish (interrupted or failed); pass " \
           "--overwrite to finish replacing it" in capsys.readouterr().err
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("differs (an unfinished --overwrite)") == 1
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--overwrite"]) == 0
    assert "6 runs, 5 complete (kept), 1 to run (1 left by an unfinished --overwrite, trained again)" in \
        capsys.readouterr().out
    assert not list(grid.rglob("*.replacing"))
    assert main(["report", str(grid / "lr=0.05"), "--no-plots"]) == 0


# a method of the user's own (examples/custom_strategy.py registers "l2"), swept over its option
OWN = """base = "base.toml"
name = "mine"
output_dir = "{out}"
methods = ["finetune", "l2"]
seeds = [0]
num_cpus = 2
[grid]
"strategy.l2.strength" = [0.0, 5.0]
"""


@pytest.mark.slow
def test_a_sweep_runs_the_methods_a_plugin_registers_in_every_worker(sweep_files, tmp_path, local_ray, capsys,
                                                                    monkeypatch):
    from pathlib import Path

    from spikecl.continual import strategies

    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))      # the plugin's l2 ends with the test
    monkeypatch.chdir(tmp_path)                                                  # a relative plugin path
    plugin = Path(__file__).resolve().parents[1] / "examples" / "custom_strategy.py"
    (tmp_path / "custom_strategy.py").write_text(plugin.read_text())
    path = sweep_files(BASE, OWN)
    assert main(["sweep", str(path), "--no-progress"]) == 2                    # l2 is unknown without it
    assert "--plugin" in capsys.readouterr().err
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--plugin", "custom_strategy.py"]) == 0
    assert "sweep mine: 3/3 runs complete" in capsys.readouterr().out          # finetune runs once
    point = tmp_path / "results" / "mine"
    runs = {s: read_continual(point / f"l2.strength={s}" / "l2-seed0.h5") for s in (0.0, 5.0)}
    assert {s: r.config["strategy"]["options"]["l2"]["strength"] for s, r in runs.items()} == {0.0: 0.0, 5.0: 5.0}
    # the workers ran the plugin's penalty: none at strength 0 (fine-tuning exactly), an anchor at strength 5
    finetune = read_continual(point / "base" / "finetune-seed0.h5")
    assert np.array_equal(runs[0.0].acc_matrix, finetune.acc_matrix)
    assert not np.array_equal(runs[5.0].acc_matrix, finetune.acc_matrix)


@pytest.mark.slow
def test_an_interrupted_sweep_stops_its_runs_even_on_a_cluster_it_joined(sweep_files, tmp_path, local_ray, capsys,
                                                                         monkeypatch):
    """Ctrl-C or SIGTERM while runs train on a Ray instance the sweep did not start (as with ``--address``): the
    sweep cancels them and waits for them to stop before it reports the interruption, so no run writes a results
    file afterwards. (A tiny run that finishes as the cancel arrives keeps its complete results file, written before
    the report, for the next sweep to resume.)"""
    import time

    path = sweep_files(BASE, RUNS)
    real_wait = local_ray.wait

    def interrupted(*args, **kwargs):        # the first wait for a finished run is interrupted; later ones are real
        monkeypatch.setattr(local_ray, "wait", real_wait)
        raise KeyboardInterrupt

    monkeypatch.setattr(local_ray, "wait", interrupted)
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 130
    reported = time.time()
    assert "sweep interrupted" in capsys.readouterr().err
    written = {p: p.stat().st_mtime for p in (tmp_path / "results").rglob("*-seed*.h5")}
    probe = local_ray.remote(num_cpus=2)(lambda: True)         # starts only once no run holds a CPU
    assert local_ray.get(probe.remote(), timeout=300)
    time.sleep(3)                                              # longer than a tiny run takes to train and write
    assert {p: p.stat().st_mtime for p in (tmp_path / "results").rglob("*-seed*.h5")} == written
    assert all(mtime <= reported for mtime in written.values())


def test_shipped_sweep_validates():
    from pathlib import Path

    sweep = load_sweep(Path(__file__).parents[1] / "models" / "sweeps" / "pmnist5k_lr.toml")
    assert len(sweep.runs) == 12 and sweep.runs[0].raw["train"]["epochs"] == 1
    for name, kind in (("hlop_pmnist5k_select.toml", "permuted"), ("hlop_rmnist5k_select.toml", "rotated")):
        sweep = load_sweep(Path(__file__).parents[1] / "models" / "sweeps" / name)
        tuned = {m for m, points in sweep.candidates.items() if len(points) > 1}
        assert tuned == {"ewc", "si", "hlop-energy", "hlop-spikecl", "gpm-tuned"} and len(sweep.runs) == 15
        assert all(r.raw["data"]["eval_split"] == "validation" and r.seed == 100 for r in sweep.runs)
        assert {r.raw["stream"]["kind"] for r in sweep.runs} == {kind} and sweep.final_seeds == [0, 1, 2]


SHIPPED_SWEEPS = sorted((Path(__file__).parents[1] / "models" / "sweeps").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED_SWEEPS, ids=[p.stem for p in SHIPPED_SWEEPS])
def test_every_shipped_sweep_plans_its_trials_on_validation_only(path):
    """Each sweep of models/sweeps plans (every run's config valid); a selecting one's trials all read the
    validation split of its selection seeds, and a method's candidates are distinct runs: a grid that varies EWC's
    λ and SI's c together gives each method one candidate per value of what it reads, not the product."""
    sweep = load_sweep(path)
    assert sweep.runs and len({r.results for r in sweep.runs}) == len(sweep.runs)
    if sweep.config.select:
        assert all(r.raw["data"]["eval_split"] == "validation" and r.seed in sweep.config.select_seeds
                   for r in sweep.runs)
    if path.stem == "hlop_pmnist5k_ewc_si_joint_select":
        trials = [r for r in sweep.runs if r.method in ("ewc", "si")]
        assert {m: len(c) for m, c in sweep.candidates.items()} == {"ewc": 20, "si": 20} and len(trials) == 40
        assert {(r.raw["train"]["lr"], r.raw["strategy"]["ewc"]["lam"]) for r in trials if r.method == "ewc"} == {
            (lr, lam) for lr in (0.1, 0.2, 0.4, 0.8) for lam in (0.3, 1.0, 3.0, 10.0, 30.0)}


def test_a_comparison_plot_that_cannot_be_written_is_refused_before_any_run(sweep_files, tmp_path, capsys):
    """A folder named sweep-comparison.png stopped a selecting sweep after its trials, before its table, selection
    and final runs; it is now refused first (and --no-plots draws none)."""
    from spikecl.cli import main

    path = sweep_files(BASE, SWEEP)
    (tmp_path / "results" / "grid" / "sweep-comparison.png").mkdir(parents=True)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "grid/sweep-comparison.png is a folder where the sweep's comparison plot goes" in err
    assert main(["sweep", str(path), "--dry-run", "--no-plots"]) == 0


@pytest.mark.parametrize("change, message", [
    ({"complete": 12}, "12 of 8 runs complete"),
    ({"seeds": {"finetune @ lr=0.1": -3}}, "its seed counts {'finetune @ lr=0.1': -3} are not whole numbers >= 1"),
    ({"summary": {"finetune @ lr=0.1": {"acc": [3.0, 0.0]}}}, "finetune @ lr=0.1's ACC [3.0, 0.0] is not a mean in"),
    ({"summary": {"finetune @ lr=0.1": {"acc": [float("nan"), 0.0]}}}, "finetune @ lr=0.1's ACC [nan, 0.0] is not"),
    ({"points": {"finetune @ lr=0.1": ["finetune"]}}, "its points are not [method, settings] pairs"),
    ({"points": ["finetune", {"train.lr": 0.1}]}, "its points are not [method, settings] pairs"),
    ({"chosen": {"finetune": 0.1}}, "its chosen points are not labels"),
])
def test_a_sweep_summary_of_impossible_counts_or_means_is_refused(tmp_path, change, message):
    """The report printed '12/8 runs complete', -3 seeds and an ACC of 300 % or nan as they were stored."""
    from spikecl.continual.sweep import _record
    from spikecl.io import write_run

    good = {"name": "grid", "complete": 8, "planned": 8, "split_note": "", "failures": {},
            "summary": {"finetune @ lr=0.1": {"acc": [0.5, 0.01]}}, "seeds": {"finetune @ lr=0.1": 2}}
    assert _record(read_run(write_run(tmp_path / "good.h5", "sweep", {}, attrs=good), "sweep"))["complete"] == 8
    bad = write_run(tmp_path / "bad.h5", "sweep", {}, attrs={**good, **change})
    with pytest.raises(ResultsError, match=re.escape(f"{bad} is corrupt: {message}")):
        _record(read_run(bad, "sweep"))


def test_a_sweeps_summary_holds_its_runs_means_a_mixed_split_and_each_failures_last_error(sweep_files):
    """The summary's counts and means (fractions, ± the seeds' sample std) are those of the runs given, computed from
    their matrices; its split is "mixed" where the runs were measured on two splits, and a run that failed every
    attempt is shown with the error of its last one."""
    from spikecl.continual.results import ContinualResult
    from spikecl.continual.sweep import _summary_text, summary_record

    sweep = load_sweep(sweep_files(BASE, SWEEP))
    matrices = [np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]]), np.array([[0.1, 0.1], [0.7, 0.2], [0.7, 0.75]])]
    results = [ContinualResult("finetune @ lr=0.05", seed, {"data": {"eval_split": split}}, acc,
                               np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)), np.ones(2), {})
               for seed, split, acc in zip((0, 1), ("test", "validation"), matrices)]
    record = summary_record(results, sweep, {"lr=0.1/finetune-seed1": ["out of memory", "diverged at task 2"]})
    assert len(sweep.runs) == 8 and (record["complete"], record["planned"], record["eval_split"]) == (2, 8, "mixed")
    acc, bwt = [0.875, 0.725], [0.8 - 0.9, 0.7 - 0.7]                # last row's mean; task 1 after task 2 - after 1
    stats = record["summary"]["finetune @ lr=0.05"]
    assert stats["acc"] == pytest.approx([0.8, np.std(acc, ddof=1)]) and stats["bwt"] == pytest.approx(
        [-0.05, np.std(bwt, ddof=1)])
    assert record["seeds"] == {"finetune @ lr=0.05": 2}
    text = _summary_text(record)
    assert text.startswith("sweep grid: 2/8 runs complete\n")
    assert "FAILED lr=0.1/finetune-seed1: 2 attempt(s); last error: diverged at task 2" in text
    assert "80.0 ±10.6" in text                                      # 0.15 / sqrt(2) = 10.6 points


def test_a_sweep_is_drawn_as_curves_only_over_one_numeric_key_tried_at_three_values():
    """Curves need every row's point to set the same one key to a real number and some method to have three values
    of it; anything else (a summary written before points were recorded, two keys, strings, booleans, two values)
    stays bars."""
    from spikecl.continual.sweep_plot import setting_curves

    stats = {"acc": (0.5, 0.01)}
    rows = {f"{m} @ lr={v}": [m, {"train.lr": v}] for m in ("gpm", "hlop") for v in (0.1, 0.2, 0.4)}
    summary = {label: stats for label in rows}
    key, curves, levels = setting_curves(summary, rows)
    assert key == "train.lr" and {m: sorted(c) for m, c in curves.items()} == {"gpm": [0.1, 0.2, 0.4],
                                                                                "hlop": [0.1, 0.2, 0.4]}
    assert levels == {}
    assert setting_curves(summary, {}) is None                                     # an older summary
    two = list(rows)[:2] + list(rows)[3:5]
    assert setting_curves({k: stats for k in two}, {k: rows[k] for k in two}) is None          # two values each
    key, curves, _ = setting_curves({k: stats for k in two}, rows)        # a third planned, without a result
    assert curves["gpm"][0.4] == {} and curves["gpm"][0.1] == stats      # kept on the axis (drawn as a cross)
    for value in ("0.1", True, float("inf")):
        odd = {**rows, "gpm @ lr=0.1": ["gpm", {"train.lr": value}]}
        assert setting_curves(summary, odd) is None
    assert setting_curves(summary, {**rows, "gpm @ lr=0.1": ["gpm", {"train.lr": 0.1, "ewc.lam": 3.0}]}) is None


def test_a_method_the_swept_key_does_not_concern_is_drawn_as_a_level_beside_the_curves(tmp_path,
                                                                                       monkeypatch):
    """A grid over EWC's λ runs fine-tuning once (the key is not its own): EWC is a line against λ and fine-tuning a
    dashed level on both panels, where it was drawn as bars before; a sweep where only one-point methods remain
    draws no curves."""
    from spikecl.continual import plots
    from spikecl.continual.sweep_plot import setting_curves

    rows = {f"ewc @ lam={v}": ["ewc", {"strategy.ewc.lam": v}] for v in (1.0, 3.0, 10.0)}
    rows["finetune @ lam=1.0"] = ["finetune", {}]
    summary = {label: {"acc": (0.5 + 0.01 * i, 0.01), "bwt": (-0.1, 0.01)} for i, label in enumerate(rows)}
    key, curves, levels = setting_curves(summary, rows)
    assert key == "strategy.ewc.lam" and sorted(curves) == ["ewc"] and sorted(curves["ewc"]) == [1.0, 3.0, 10.0]
    assert levels == {"finetune": summary["finetune @ lam=1.0"]}
    assert setting_curves({"finetune @ lam=1.0": summary["finetune @ lam=1.0"]}, rows) is None

    import matplotlib.axes

    drawn, real = {}, matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda ax, y, **kw: drawn.setdefault(kw.get("label"), [])
                        .append(round(y, 6)) or real(ax, y, **kw))
    plots.plot_setting_curves(curves, key, tmp_path / "c.png", levels=levels)
    assert drawn["finetune (one point)"] == [53.0, -10.0]             # its ACC and BWT, in percent, one per panel
    assert (tmp_path / "c.png").stat().st_size > 0
    with pytest.raises(DataError, match="finetune: ACC or BWT holds 1.5"):
        plots.plot_setting_curves(curves, key, tmp_path / "d.png", levels={"finetune": {"acc": (1.5, 0.0)}})


def test_a_joint_search_is_drawn_as_a_grid_per_method_over_its_own_two_settings():
    """A rate searched with EWC's λ and SI's c (each method run over its own two: the other's key stays at its first
    value) is one panel per method over the keys its points vary; a method varying one key, or three, stays bars."""
    from spikecl.continual.sweep_plot import setting_curves, setting_grids

    stats = {"acc": (0.5, 0.01)}
    rows = {f"ewc @ lr={lr}_lam={lam}_c=0.1": ["ewc", {"train.lr": lr, "strategy.ewc.lam": lam,
                                                       "strategy.si.c": 0.1}] for lr in (0.1, 0.2) for lam in (1, 3)}
    rows |= {f"si @ lr={lr}_lam=1_c={c}": ["si", {"train.lr": lr, "strategy.ewc.lam": 1, "strategy.si.c": c}]
             for lr in (0.1, 0.2) for c in (0.1, 0.3, 1.0)}
    summary = {label: stats for label in rows}
    grids = setting_grids(summary, rows)
    assert {m: keys for m, (keys, _) in grids.items()} == {"ewc": ("train.lr", "strategy.ewc.lam"),
                                                          "si": ("train.lr", "strategy.si.c")}
    assert sorted(grids["si"][1]) == [(0.1, 0.1), (0.1, 0.3), (0.1, 1.0), (0.2, 0.1), (0.2, 0.3), (0.2, 1.0)]
    assert setting_curves(summary, rows) is None
    one_key = {label: [m, {"train.lr": s["train.lr"]}] for label, (m, s) in rows.items() if "lam=1_" in label}
    assert setting_grids({k: stats for k in one_key}, one_key) is None
    three = {**rows, "ewc @ odd": ["ewc", {"train.lr": 0.4, "strategy.ewc.lam": 10, "strategy.si.c": 0.3}]}
    assert setting_grids({**summary, "ewc @ odd": stats}, three) is None


@pytest.mark.parametrize("chosen", [{"ewc": "si @ lr=0.1_lam=1_c=0.1"}, {"ewc": "ewc @ gone"}, {"nobody": "x"}])
def test_a_sweep_plot_draws_a_chosen_point_only_where_it_is_a_row_of_its_own_method(tmp_path, chosen, monkeypatch):
    """A summary naming as chosen another method's row, or one not drawn, raised a KeyError while plotting."""
    from spikecl.continual import plots
    from spikecl.continual.sweep_plot import plot_sweep

    rows = {f"{m} @ lr={lr}_lam=1_c={c}": [m, {"train.lr": lr, f"strategy.{m}.x": c}]
            for m in ("ewc", "si") for lr in (0.1, 0.2) for c in (0.1, 0.3)}
    record = {"name": "joint", "seeds": {label: 1 for label in rows}, "failures": {}, "points": rows,
              "summary": {label: {"acc": [0.5, 0.0], "bwt": [0.0, 0.0]} for label in rows}, "chosen": chosen}
    drawn = []
    monkeypatch.setattr(plots, "plot_setting_grids", lambda grids, target, **kw: drawn.append(kw["chosen"]))
    plot_sweep(record, tmp_path / "p.png")
    assert drawn == [{}]
