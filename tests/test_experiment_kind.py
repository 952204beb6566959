"""The experiment-kind driver: one meaning of existing results, ``--resume`` and ``--overwrite`` for every kind, shown
on a fourth kind whose whole logic is the few lines below (a config, a plan of one job per seed, a summary),
registered from outside spikecl like a user's own kind."""

import contextlib
import importlib.util
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from spikecl import experiment_kind
from spikecl.cli import main
from spikecl.commands.run import check_reads_data
from spikecl.config import RunHeader
from spikecl.errors import ConfigError, ExistsError, ResultsError, SpikeCLError
from spikecl.experiment_kind import Job, JobOptions, Kind, register_kind
from spikecl.io import read_run, write_run
from spikecl.options import option
from spikecl.report import collect, report_paths

RAN: list[tuple[int, JobOptions]] = []


@dataclass
class ToyConfig(RunHeader):
    kind: str = option("toy", choices=("toy",))
    value: float = option(1.0, low=0.0)


def measure(cfg: ToyConfig, seed: int, path: Path, options: JobOptions) -> str:
    RAN.append((seed, options))
    write_run(path, "toy", asdict(cfg), {"value": cfg.value * (seed + 1)}, attrs={"seed": seed},
              overwrite=options.overwrite)
    return f"value {cfg.value * (seed + 1):.2f}"


class ToyKind(Kind):
    name = "toy"
    config = ToyConfig

    def plan(self, cfg):
        folder = Path(cfg.output_dir) / cfg.name
        return [Job(folder / f"toy_seed{s}.h5", lambda o, s=s: measure(cfg, s, folder / f"toy_seed{s}.h5", o),
                    checkpoint=folder / f"toy_seed{s}.ckpt") for s in cfg.seeds]

    def summarize(self, runs, detail=True):
        return "\n".join(f"toy seed {r.attrs['seed']}: {r.metrics['value']:.2f}" for r in runs)


KIND = ToyKind()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment_kind, "_REGISTERED", {})            # registrations end with the test
    register_kind(KIND)
    RAN.clear()
    path = tmp_path / "toy.toml"
    path.write_text(f'kind = "toy"\nseeds = [0, 1]\noutput_dir = "{tmp_path}"\nvalue = 1.5\n')
    return path


def run(path, *extra):
    return main(["run", str(path), "--no-progress", "--no-plots", *extra])


class SharedPathKind(ToyKind):
    """A plan whose results path leaves the seed out: every job writes one file."""

    def plan(self, cfg):
        path = Path(cfg.output_dir) / cfg.name / "toy.h5"
        return [Job(path, lambda o, s=s: measure(cfg, s, path, o)) for s in cfg.seeds]


@pytest.mark.parametrize("flags", [(), ("--overwrite",), ("--resume",)])
def test_a_plan_whose_jobs_share_a_results_file_is_refused_before_any_work(toy, tmp_path, capsys, flags):
    experiment_kind._REGISTERED.pop("toy")                 # the fixture's, replaced for this test
    register_kind(SharedPathKind())
    assert run(toy, *flags) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"spikecl: error: kind 'toy': jobs 1 and 2 of the plan both write {tmp_path / 'toy' / 'toy.h5'}; "
                   "give each job a file of its own (e.g. name the seed in it)")
    assert not RAN and not (tmp_path / "toy").exists()


def test_a_new_kind_runs_reports_and_refuses_to_replace_results(toy, tmp_path, capsys):
    assert run(toy) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'toy' / 'toy_seed1.h5'}: value 3.00" in out and "toy seed 1: 3.00" in out
    assert [seed for seed, _ in RAN] == [0, 1] and RAN[0][1] == JobOptions(False, False, False, "cpu")
    run_file = read_run(tmp_path / "toy" / "toy_seed0.h5", "toy")
    assert run_file.config["value"] == 1.5 and run_file.metrics == {"value": 1.5}
    assert run(toy) == 2
    err = capsys.readouterr().err
    assert "toy_seed0.h5 exists; pass --overwrite to replace it or --resume to keep it" in err
    assert err.count("\n") == 1 and len(RAN) == 2
    assert main(["report", str(tmp_path / "toy"), "--no-plots"]) == 0
    assert "toy seed 0: 1.50\ntoy seed 1: 3.00" in capsys.readouterr().out


def test_an_experiment_named_like_one_of_another_kind_is_refused_before_any_work(toy, tmp_path, capsys):
    """A sparsey experiment named like a continual one wrote into its folder without a word (their report mixed, a
    continual run's note called the CA3 plots there its own). Results of another kind in the output folder are
    refused, even with --overwrite; a sweep's summary there, another tool's HDF5 file and a damaged file are not."""
    folder = tmp_path / "toy"
    write_run(folder / "sweep.h5", "sweep", {})
    write_run(folder / "other_seed0.h5", "toy", {})
    (folder / "net.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert run(toy) == 0
    write_run(folder / "ewc-seed0.h5", "continual", {})
    (folder / "toy_seed1.h5").unlink()                 # a run to make (a finished one is only reprinted)
    for flags in (("--overwrite",), ("--resume",), ()):
        if not flags:                                  # else its own results' "exists" is said first
            (folder / "toy_seed0.h5").unlink()
        RAN.clear()
        assert run(toy, *flags) == 2 and not RAN
        assert capsys.readouterr().err == (f"spikecl: error: {folder} holds ewc-seed0.h5, results of a 'continual' "
                                           "experiment: this 'toy' experiment's would mix with them; give it another "
                                           "name (--set name=...) or output_dir\n")


def test_resume_keeps_valid_results_and_reruns_missing_or_corrupt_ones(toy, tmp_path, capsys):
    assert run(toy) == 0
    kept = tmp_path / "toy" / "toy_seed0.h5"
    stamp = kept.stat().st_mtime_ns
    (tmp_path / "toy" / "toy_seed1.h5").write_bytes(b"killed half-way")
    RAN.clear()
    assert run(toy, "--resume", "--seeds", "0,1,2") == 0
    assert [(seed, o.overwrite, o.resume) for seed, o in RAN] == [(1, True, True), (2, False, True)]
    assert kept.stat().st_mtime_ns == stamp and f"{kept}: complete, kept" in capsys.readouterr().out
    assert read_run(tmp_path / "toy" / "toy_seed1.h5").metrics == {"value": 3.0}
    RAN.clear()
    assert run(toy, "--overwrite", "--set", "value=2.0") == 0
    assert [seed for seed, _ in RAN] == [0, 1] and read_run(kept).metrics == {"value": 2.0}


def test_resume_of_a_finished_experiment_reprints_it_from_a_read_only_folder(toy, tmp_path, capsys, monkeypatch):
    """README: running it again with --resume keeps the finished results and only reprints them; a read-only copy
    (an archive, a shared mount) was refused as an output folder not writable. What would write still is."""
    from spikecl.errors import ConfigError

    assert run(toy) == 0
    capsys.readouterr()

    def read_only(folder, what="folder"):
        raise ConfigError(f"{what} {folder} is not writable")
    monkeypatch.setattr(experiment_kind, "check_writable_folder", read_only)
    RAN.clear()
    assert run(toy, "--resume") == 0 and not RAN
    assert "toy_seed1.h5: complete, kept" in capsys.readouterr().out
    assert run(toy, "--resume", "--seeds", "0,1,2") == 2 and not RAN
    assert f"output folder {tmp_path / 'toy'} is not writable" in capsys.readouterr().err


def test_resume_removes_the_checkpoint_left_beside_a_kept_result(toy, tmp_path, capsys):
    """A run killed after writing its results and before removing its checkpoint left both: --resume keeps the
    results and removes the checkpoint (else it would stay for ever, and a plain run would refuse it)."""
    assert run(toy) == 0
    leftover = tmp_path / "toy" / "toy_seed0.ckpt"
    leftover.write_bytes(b"state")
    capsys.readouterr()
    RAN.clear()
    assert run(toy, "--resume") == 0
    out = capsys.readouterr().out
    assert "toy_seed0.h5: complete, kept, its leftover checkpoint removed" in out
    assert "toy_seed1.h5: complete, kept\n" in out and RAN == [] and not leftover.exists()
    assert run(toy, "--resume") == 0 and "removed" not in capsys.readouterr().out


def test_no_plots_names_the_older_plots_it_leaves_beside_new_results(toy, tmp_path, capsys):
    import os
    assert run(toy) == 0
    stale = tmp_path / "toy" / "toy.png"
    stale.write_bytes(b"png of the first results")
    os.utime(stale, (1, 1))                                  # drawn long before
    capsys.readouterr()
    assert run(toy, "--overwrite", "--set", "value=2.0") == 0
    assert (f"note: 1 PNG file in {tmp_path / 'toy'} predate these results (--no-plots wrote none); "
            f"'spikecl report {tmp_path / 'toy'}' redraws them") in capsys.readouterr().out
    os.utime(stale)                                          # redrawn after the results: nothing to say
    assert run(toy, "--resume") == 0
    assert "predate" not in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--set", "seeds=[]"], "seeds: expected at least one seed"),
    (["--set", "value=-1.0"], "value: -1.0 is below the minimum 0.0"),
    (["--nproc", "2"], "--nproc: 'toy' experiments do not train data-parallel"),
])
def test_bad_runs_are_one_line_errors_before_anything_runs(toy, capsys, extra, message):
    assert run(toy, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and RAN == []


def test_register_kind_refuses_spikecl_names_and_what_is_not_a_kind(monkeypatch):
    monkeypatch.setattr(experiment_kind, "_REGISTERED", {})
    with pytest.raises(ConfigError, match="'continual' is one of spikecl's own kinds"):
        register_kind(type("Mine", (ToyKind,), {"name": "continual"})())
    with pytest.raises(ConfigError, match="expected a Kind with a name and a config dataclass"):
        register_kind(object())
    with pytest.raises(ConfigError, match=r"RunHeader must declare its kind: kind: str = option\('mine', "
                                          r"choices=\('mine',\)\)"):
        register_kind(type("Mine", (ToyKind,), {"name": "mine", "config": RunHeader})())
    for method in ("plan", "summarize"):      # Kind's own raise NotImplementedError: refused when registered
        lacking = type("Lacking", (ToyKind,), {"name": "lacking", method: getattr(Kind, method)})
        with pytest.raises(ConfigError, match=re.escape(f"register_kind('lacking'): Lacking must define {method}()")):
            register_kind(lacking())
    with pytest.raises(ConfigError, match=re.escape("register_kind('plain'): its config <class 'int'> must be a "
                                                    "dataclass deriving from spikecl.config.RunHeader")):
        register_kind(type("Plain", (ToyKind,), {"name": "plain", "config": int})())
    with pytest.raises(ConfigError, match=r"kind: 'toy' is not an experiment kind; choose from \['ca3', "):
        experiment_kind.kind("toy")
    bad = type("BadConfig", (ToyConfig,), {"__annotations__": {"value": float}, "value": option(-1.0, low=0.0)})
    with pytest.raises(ConfigError, match=r"register_kind\('toy'\): the default of value: -1.0 is below the minimum"):
        register_kind(type("Bad", (ToyKind,), {"config": dataclass(bad)})())
    lone = type("Lone", (ToyKind,), {"name": "lone", "data_parallel": True})
    with pytest.raises(ConfigError, match=re.escape("register_kind('lone'): data_parallel = True needs a session() "
                                                    "of its own that joins the processes")):
        register_kind(lone())               # else each of --nproc's processes ran and reported every job
    joined = type("Joined", (lone,), {"name": "toy", "session": lambda self, cfg: contextlib.nullcontext(True)})
    assert register_kind(joined()).data_parallel
    monkeypatch.setattr(experiment_kind, "_REGISTERED", {})
    assert register_kind(KIND) is KIND and register_kind(ToyKind()).name == "toy"   # one kind again: a plugin read twice
    with pytest.raises(ConfigError, match=r"^register_kind: 'toy' is registered already, by ToyKind of "
                                          r"test_experiment_kind; register Other under another name$"):
        register_kind(type("Other", (ToyKind,), {})())      # a second plugin's kind of the name: it replaced the first
    assert type(experiment_kind.kind("toy")) is ToyKind
    with pytest.raises(ConfigError, match=r"^kind name 'a b/\.\./c': use letters, digits"):
        register_kind(type("Odd", (ToyKind,), {"name": "a b/../c"})())


def test_the_custom_kind_example_measures_lif_rates_through_the_driver(tmp_path, monkeypatch, capsys):
    """examples/custom_kind.py: a kind defined outside spikecl gets results files, refusal to overwrite, --resume
    and the report; its integrate-and-fire neurons (beta = 1) fire at the input current's rate, leaky ones only above
    the current that balances their leak, 1 - beta."""
    module = load_custom_kind(monkeypatch)                                # registers 'rate_curve'
    exp = tmp_path / "rates.toml"
    exp.write_text(f'kind = "rate_curve"\nseeds = [0, 1]\noutput_dir = "{tmp_path}"\nbetas = [0.9, 1.0]\n'
                   'currents = [0.05, 0.2, 0.5]\nnoise = 0.0\nsteps = 400\n')
    assert experiment_kind.run_file(exp, progress=False, plots=True) == 0
    rates = read_run(tmp_path / "rates" / "rate_curve-seed1.h5", "rate_curve").arrays["rates"]
    np.testing.assert_allclose(rates[1], [0.05, 0.2, 0.5], atol=1 / 400)         # beta = 1: rate = current
    assert rates[0, 0] == 0 and 0 < rates[0, 1] < 0.2 and 0 < rates[0, 2] < 0.5  # beta = 0.9: silent below 0.1
    import torch

    from spikecl.snn import LIFParams

    neuron, mem, fired = LIFParams(beta=0.9).spiking(), torch.zeros(3), 0.0  # spikecl's own neuron, same inputs
    for _ in range(400):
        spk, mem = neuron(torch.tensor([0.05, 0.2, 0.5]), mem)
        fired = fired + spk
    np.testing.assert_allclose(rates[0], (fired / 400).numpy())
    assert (tmp_path / "rates" / "rate_curve.png").stat().st_size > 5000
    runs = [read_run(tmp_path / "rates" / f"rate_curve-seed{seed}.h5", "rate_curve") for seed in (0, 1)]
    runs[1].arrays["rates"] = runs[0].arrays["rates"] + 0.01       # seeds 0.01 apart: sample std 0.01 / sqrt(2)
    summary = module.RateCurveKind().summarize(runs)
    assert " ± 0.007" in summary and " ± 0.005" not in summary
    with pytest.raises(ExistsError, match="rate_curve-seed0.h5 exists"):
        experiment_kind.run_file(exp, progress=False)
    assert experiment_kind.run_file(exp, ["steps=400"], resume=True, progress=False, plots=False) == 0
    assert "rate_curve-seed0.h5: complete, kept" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="unknown key 'stepz'"):
        experiment_kind.run_file(exp, ["stepz=3"], progress=False)
    assert [len(runs) for runs in collect([tmp_path / "rates"]).values()] == [2]
    other = tmp_path / "other.toml"                     # another experiment: other betas, other currents
    other.write_text(exp.read_text().replace("rates", "other").replace("seeds = [0, 1]", "seeds = [0]")
                     .replace("betas = [0.9, 1.0]", "betas = [0.5]").replace("[0.05, 0.2, 0.5]", "[0.1]"))
    assert experiment_kind.run_file(other, progress=False, plots=False) == 0
    capsys.readouterr()
    for folder in ("rates", "other"):
        (tmp_path / "both").mkdir(exist_ok=True)
        for file in (tmp_path / folder).glob("*.h5"):
            (tmp_path / "both" / f"{folder}-{file.name}").write_bytes(file.read_bytes())
    with pytest.raises(ResultsError,
                       match=r"hold rate_curve runs made with different settings \(betas, currents differ\)"):
        report_paths([tmp_path / "both"], plots=False)
    assert capsys.readouterr().out == ""                 # refused before any table
    for file in (tmp_path / "both").glob("rates-*"):
        file.unlink()
    (tmp_path / "both" / "again.h5").write_bytes((tmp_path / "other" / "rate_curve-seed0.h5").read_bytes())
    with pytest.raises(ResultsError, match="both hold rate_curve seed 0; report one of them"):
        report_paths([tmp_path / "both"], plots=False)


def test_a_summary_that_fails_on_runs_that_do_not_fit_together_is_a_one_line_error(tmp_path, monkeypatch):
    """A kind of the user's whose summary stacks arrays of other shapes: a ResultsError, not a traceback."""
    monkeypatch.setattr(experiment_kind, "_REGISTERED", {})
    register_kind(type("Stacking", (ToyKind,), {"summarize": lambda self, runs, detail=True: str(
        np.stack([np.zeros(int(run.config["value"])) for run in runs]))})())
    runs = [SimpleNamespace(config={"value": v}) for v in (1.0, 2.0)]
    with pytest.raises(ResultsError, match=r"^the toy summary of 2 results files fails \(ValueError: all input .*"
                                           r"are they seeds of one experiment\?"):
        experiment_kind.summary(experiment_kind.kind("toy"), runs)
    with pytest.raises(ResultsError, match=r"^the toy summary of 1 results file fails \(.*\); a defect of the "
                                           r"kind's summarize\(\), or a file toy cannot read$"):
        experiment_kind.summary(experiment_kind.kind("toy"), [SimpleNamespace(config={})])    # its own KeyError


def test_sweeps_are_results_not_experiments(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('kind = "sweep"\n')
    assert run(path) == 2
    assert "'sweep' results are made by their own command" in capsys.readouterr().err


def test_no_library_module_imports_the_command_line():
    import ast

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in [*(root / "spikecl").rglob("*.py"), *(root / "hardware").rglob("*.py")]:
        if path.name in ("cli.py", "__main__.py") or "commands" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if n == "spikecl.cli" or n.startswith("spikecl.commands")]
    assert offenders == []


@pytest.mark.parametrize("flags", [(), ("--overwrite",)])
def test_a_result_another_run_writes_meanwhile_is_never_replaced(toy, tmp_path, capsys, monkeypatch, flags):
    """Permission to write is decided at the start: a results file another run writes while this one goes is
    refused, not replaced, under --overwrite too (it replaces only what existed when it started)."""
    other, measured = tmp_path / "toy" / "toy_seed1.h5", measure

    def first_job_and_another_run(cfg, seed, path, options):
        if seed == 0:                                    # meanwhile another run finishes seed 1
            write_run(other, "toy", asdict(cfg), {"value": -1.0}, attrs={"seed": 1})
        return measured(cfg, seed, path, options)

    monkeypatch.setattr(sys.modules[__name__], "measure", first_job_and_another_run)
    assert run(toy, *flags) == 2
    err = capsys.readouterr().err
    assert f"{other} was written by another run while this one ran; run again with --resume" in err
    assert read_run(other).metrics == {"value": -1.0} and [seed for seed, _ in RAN] == [0]


def test_a_result_another_run_replaces_meanwhile_is_not_replaced_by_an_earlier_overwrite(toy, tmp_path, capsys,
                                                                                          monkeypatch):
    """An --overwrite run replaces the files as they were when it started: one that another run (its own
    --overwrite) wrote anew meanwhile is refused, not silently replaced by the older run's result."""
    assert run(toy) == 0
    other, measured = tmp_path / "toy" / "toy_seed1.h5", measure

    def first_job_and_another_run(cfg, seed, path, options):
        if seed == 0:                                    # meanwhile another run replaces seed 1
            write_run(other, "toy", asdict(cfg), {"value": -1.0}, attrs={"seed": 1}, overwrite=True)
        return measured(cfg, seed, path, options)

    monkeypatch.setattr(sys.modules[__name__], "measure", first_job_and_another_run)
    RAN.clear()
    capsys.readouterr()
    assert run(toy, "--overwrite") == 2
    assert f"{other} was written by another run while this one ran" in capsys.readouterr().err
    assert read_run(other).metrics == {"value": -1.0} and [seed for seed, _ in RAN] == [0]


def test_a_folder_where_a_result_goes_is_refused_before_any_work(toy, tmp_path, capsys):
    (tmp_path / "toy" / "toy_seed1.h5").mkdir(parents=True)
    for extra in ((), ("--overwrite",), ("--resume",)):
        assert run(toy, *extra) == 2
        assert "toy_seed1.h5 is a folder where a results file goes; move it away" in capsys.readouterr().err
    assert RAN == []


def test_temporaries_of_killed_writes_go_when_the_job_completes(toy, tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    left = [folder / ".toy_seed0.h5.abc.tmp", folder / ".toy_seed0.ckpt.def.tmp"]
    unrelated = folder / ".toy_seed01.h5.ghi.tmp"
    for f in (*left, unrelated):
        f.write_bytes(b"partial")
    assert run(toy) == 0
    assert not any(f.exists() for f in left) and unrelated.exists()


def test_a_failing_job_leaves_its_error_as_the_one_line_on_stderr(toy, capsys, monkeypatch):
    from spikecl.errors import DataError

    def missing(cfg, seed, path, options):
        raise DataError("toy data not found")

    monkeypatch.setattr(sys.modules[__name__], "measure", missing)
    assert main(["run", str(toy), "--no-plots"]) == 2                    # the job bar is drawn
    err = capsys.readouterr().err
    assert err.endswith("spikecl: error: toy data not found\n") and err.count("\n") == 1
    assert "job/s" not in err.rsplit("\r", 1)[-1]


def test_a_diverging_job_fails_alone_and_the_others_still_run(toy, tmp_path, capsys, monkeypatch):
    """A NaN loss belongs to one run's settings: it is said FAILED, the next job runs, what finished is reported,
    and the command exits with 2 naming the failed run in one line."""
    from spikecl.errors import NumericalError

    measured = measure

    def diverges_on_seed_0(cfg, seed, path, options):
        if seed == 0:
            raise NumericalError("training loss became NaN or infinite")
        return measured(cfg, seed, path, options)

    monkeypatch.setattr(sys.modules[__name__], "measure", diverges_on_seed_0)
    assert run(toy) == 2
    out, err = capsys.readouterr()
    assert "toy_seed0.h5: FAILED: training loss became NaN or infinite" in out
    assert "toy seed 1: 3.00" in out and (tmp_path / "toy" / "toy_seed1.h5").exists()
    assert err == ("spikecl: error: 1 of 2 runs failed, the others finished: toy_seed0.h5: training loss became NaN "
                   "or infinite; change its settings and run again with --resume --overwrite (runs whose settings "
                   "are unchanged are kept)\n")
    assert not (tmp_path / "toy" / "toy_seed0.h5").exists()


def test_a_diverging_continual_run_is_named_with_its_task(tmp_path, capsys):
    """The error names the method variant (EWC with a penalty far too strong), seed and task that diverged; the
    other method's results are written."""
    path = tmp_path / "blowup.toml"
    path.write_text(f'name = "blowup"\nseeds = [0]\noutput_dir = "{tmp_path}"\n[data]\ndataset = "digits"\n'
                    '[stream]\nkind = "split"\nscenario = "domain"\nn_tasks = 2\n[network]\nhidden = [16]\n'
                    'num_steps = 2\n[train]\nepochs = 1\n[strategy]\nmethods = ["blowup", "finetune"]\n'
                    '[variants.blowup]\nmethod = "ewc"\n"strategy.ewc.lam" = 1e9\n')
    assert main(["run", str(path), "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikecl: error: 1 of 2 runs failed, the others finished: blowup-seed0.h5: blowup seed 0, "
                          "task 2: training loss became NaN or infinite")
    assert (tmp_path / "blowup" / "finetune-seed0.h5").exists()
    kept = (tmp_path / "blowup" / "finetune-seed0.h5").stat().st_mtime_ns
    assert (tmp_path / "blowup" / "blowup-seed0.ckpt").exists()                    # task 1, done before the NaN
    record = tmp_path / "blowup" / "blowup-seed0.h5.diverged"           # not an "interrupted" run to resume
    assert json.loads(record.read_text())["error"].startswith("blowup seed 0, task 2: training loss became NaN")
    assert main(["run", str(path), "--no-progress", "--no-plots", "--set", 'strategy.methods=["blowup"]']) == 2
    assert capsys.readouterr().err.startswith(f"spikecl: error: {tmp_path}/blowup/blowup-seed0.ckpt holds a run that "
                                              "diverged (blowup seed 0, task 2: training loss became NaN")
    assert main(["report", str(tmp_path / "blowup"), "--no-plots"]) == 0
    assert (f"not reported: {tmp_path}/blowup/blowup-seed0.h5 diverged (blowup seed 0, task 2: training loss became "
            "NaN") in capsys.readouterr().out
    checkpoint = (tmp_path / "blowup" / "blowup-seed0.ckpt").stat().st_mtime_ns
    assert main(["run", str(path), "--no-progress", "--no-plots", "--resume"]) == 2          # the same settings:
    out = capsys.readouterr().out                                                          # not trained again
    assert "blowup-seed0.h5: FAILED: blowup seed 0, task 2: training loss became NaN" in out
    assert "(as blowup-seed0.h5.diverged records: not trained again; change the settings and pass --overwrite)" in out
    assert (tmp_path / "blowup" / "blowup-seed0.ckpt").stat().st_mtime_ns == checkpoint
    from spikecl.continual import runner

    interrupted = runner.ContinualRun.train_task         # a run with good settings stopped before it saves: the
    def stopped(self, task, bar=None):                   # checkpoint is still the diverged run's, and says so
        raise KeyboardInterrupt
    runner.ContinualRun.train_task = stopped
    try:
        assert main(["run", str(path), "--no-progress", "--no-plots", "--resume", "--overwrite", "--set",
                     "variants.blowup.\"strategy.ewc.lam\"=1.0"]) == 130
    finally:
        runner.ContinualRun.train_task = interrupted
    assert main(["report", str(tmp_path / "blowup"), "--no-plots"]) == 0
    assert "blowup-seed0.h5 diverged (blowup seed 0, task 2" in capsys.readouterr().out
    assert main(["run", str(path), "--no-progress", "--no-plots", "--resume", "--overwrite", "--set",
                 "variants.blowup.\"strategy.ewc.lam\"=1.0"]) == 0                 # as the error says
    assert (tmp_path / "blowup" / "finetune-seed0.h5").stat().st_mtime_ns == kept
    assert (tmp_path / "blowup" / "blowup-seed0.h5").exists() and not record.exists()
    record.write_text(json.dumps({"error": "x", "checkpoint": [1, 2, 3, 4]}))      # of a checkpoint replaced since
    from spikecl.run_files import diverged_error

    assert diverged_error(tmp_path / "blowup" / "blowup-seed0.h5") is None
    from spikecl.run_files import write_divergence

    long = tmp_path / ("v" * 240 + ".h5")             # the record's name would not fit: left out, no error
    write_divergence(long, "x")
    assert not list(tmp_path.glob("v*"))


@pytest.mark.parametrize("text", ['{"error": "loss is NaN", "checkp', '["loss is NaN"]', '{"error": 3}', ""])
def test_a_damaged_divergence_record_is_no_record(tmp_path, text):
    """A record no run could have written (cut short, not a JSON object, no error text) leaves the run to train
    again, for ``spikecl run --resume`` as for a sweep: it said "its record is unreadable" and never trained the run
    (a sweep then recorded that as the run's error, for good), while the sweep's own reader trained it."""
    from spikecl.run_files import checkpoint_path, divergence_file, diverged_error, read_divergence
    from spikecl.continual.sweep_ray import kept_divergence

    results = tmp_path / "finetune-seed0.h5"
    checkpoint_path(results).write_bytes(b"left by the run")
    divergence_file(results).write_text(text)
    assert read_divergence(results) is None and diverged_error(results) is None
    run = SimpleNamespace(results=results)
    assert kept_divergence(run) is None


def test_datasets_are_looked_for_only_where_they_are_spikecls(tmp_path):
    """A user's kind may name its own data in ``data.dataset``: left to it; spikecl's are looked for, once each."""
    from spikecl.errors import DataError
    from spikecl.experiment_kind import check_datasets

    check_datasets([{"data": {"dataset": "mine", "data_dir": str(tmp_path)}}, {"data": "x"}, None, {"seeds": [0]},
                    {"data": {"dataset": "digits"}}])
    with pytest.raises(DataError, match=f"mnist not found under {tmp_path}: expected train-images-idx3-ubyte"):
        check_datasets([{"data": {"dataset": "mnist", "data_dir": str(tmp_path)}}] * 2)


def load_custom_kind(monkeypatch):
    """examples/custom_kind.py imported as a plugin would be, its 'rate_curve' kind registered for this test only."""
    monkeypatch.setattr(experiment_kind, "_REGISTERED", {})
    path = Path(__file__).resolve().parents[1] / "examples" / "custom_kind.py"
    spec = importlib.util.spec_from_file_location("custom_kind", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "custom_kind", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("change, message", [("currents=[]", "currents"), ("betas=[]", "betas"),
                                             ("betas=[0.9, 0.9]", "betas")])
def test_the_custom_kind_example_refuses_lists_it_cannot_measure(tmp_path, monkeypatch, change, message):
    """No currents or no betas would fail mid-run; a beta twice would collapse two metrics into one key."""
    load_custom_kind(monkeypatch)
    exp = tmp_path / "rates.toml"
    exp.write_text(f'kind = "rate_curve"\nseeds = [0]\noutput_dir = "{tmp_path}"\n')
    with pytest.raises(ConfigError, match=message):
        experiment_kind.run_file(exp, [change], progress=False)
    assert not (tmp_path / "rate_curve").exists()


def test_the_custom_kind_example_draws_noise_per_beta_and_names_each_betas_metric(tmp_path, monkeypatch):
    """Each (beta, current, neuron) its own noise, no draws shared across betas; betas that print alike (0.95 and
    0.9500001 under :g) keep a metric each."""
    module = load_custom_kind(monkeypatch)
    close = tmp_path / "close.toml"
    close.write_text(f'kind = "rate_curve"\nseeds = [0]\noutput_dir = "{tmp_path}"\nbetas = [0.95, 0.9500001]\n'
                     'steps = 20\nneurons = 2\n')
    assert experiment_kind.run_file(close, progress=False, plots=False) == 0
    metrics = read_run(tmp_path / "close" / "rate_curve-seed0.h5", "rate_curve").metrics
    assert set(metrics) == {"rate_beta0.95_max_current", "rate_beta0.9500001_max_current"}
    shapes, make = [], np.random.default_rng

    class Recording:
        def __init__(self, seed):
            self.rng = make(seed)

        def standard_normal(self, size):
            shapes.append(size)
            return self.rng.standard_normal(size)

    monkeypatch.setattr(np.random, "default_rng", Recording)
    module.rate_curve(module.RateCurveConfig(betas=[0.95, 0.96], currents=[0.1], steps=3, neurons=20), 0)
    assert shapes == [(2, 1, 20)] * 3


def test_two_folders_of_two_kinds_named_together_keep_their_plots_in_their_own_folders(toy, tmp_path, capsys):
    """``spikecl report A B`` with continual results in A and another kind's in B: two tables, each kind's plots
    in its own folder (only results of one kind lying in two folders make one table whose plots need a place)."""
    from test_report import result

    from spikecl.continual.results import write_continual

    write_continual(tmp_path / "cl" / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    assert run(toy) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "cl"), str(tmp_path / "toy")]) == 0
    out = capsys.readouterr().out
    assert "== continual: 1 results file(s) ==" in out and "== toy: 2 results file(s) ==" in out
    assert (tmp_path / "cl" / "comparison.png").exists() and not list((tmp_path / "toy").glob("comparison*.png"))


class LongNameKind(ToyKind):
    """Results files named with ``cfg.value`` v's: ``v…v_seed0.h5`` beside ``v…v_seed0.ckpt``."""

    def plan(self, cfg):
        folder, stem = Path(cfg.output_dir) / cfg.name, "v" * int(cfg.value)
        return [Job(folder / f"{stem}_seed{s}.h5", lambda o, s=s: measure(cfg, s, folder / f"{stem}_seed{s}.h5", o),
                    checkpoint=folder / f"{stem}_seed{s}.ckpt") for s in cfg.seeds]


def test_the_longest_names_a_file_system_holds_run_and_a_kept_result_is_not_refused(toy, tmp_path, capsys):
    """On a 255-byte file-name limit: a checkpoint name of 241 bytes (+ 14 for its temporary file) runs, one of 242
    is refused before any work, and a finished result whose checkpoint would not fit is kept by --resume."""
    experiment_kind._REGISTERED.pop("toy")                 # the fixture's, replaced for this test
    register_kind(LongNameKind())
    assert run(toy, "--seeds", "0", "--set", "value=230") == 0, capsys.readouterr().err
    assert (tmp_path / "toy" / f"{'v' * 230}_seed0.h5").is_file() and len(RAN) == 1
    assert run(toy, "--seeds", "0", "--set", "value=231") == 2
    err = capsys.readouterr().err
    assert f"{'v' * 231}_seed0.ckpt: the name of a run's checkpoint is too long for its file system (256 bytes" in err
    kept = tmp_path / "toy" / f"{'v' * 231}_seed0.h5"                 # finished where the check was not made
    write_run(kept, "toy", {**asdict(ToyConfig(seeds=[0], output_dir=str(tmp_path), value=231.0))}, {"value": 1.0},
              attrs={"seed": 0})
    RAN.clear()
    assert run(toy, "--seeds", "0", "--set", "value=231", "--resume") == 0, capsys.readouterr().err
    assert RAN == [] and f"{kept}: complete, kept" in capsys.readouterr().out


def test_a_run_that_fails_before_writing_anything_removes_the_folders_it_created(tmp_path):
    """run_plan's output folders (made by the results file's lock) are removed when the first job fails before
    writing: a failed run leaves nothing behind (removed_if_empty_on_error)."""
    from spikecl.experiment_kind import run_plan

    @dataclass
    class BrokenConfig(RunHeader):
        kind: str = option("broken", choices=("broken",))

    def fail(options):
        raise RuntimeError("the job broke")

    class BrokenKind(Kind):
        name, config = "broken", BrokenConfig

        def plan(self, cfg):
            return [Job(Path(cfg.output_dir) / cfg.name / "r.h5", fail)]

        def summarize(self, runs, detail=True):
            return ""

    cfg = BrokenConfig(name="exp", output_dir=str(tmp_path / "out" / "deeper"))
    with pytest.raises(SpikeCLError, match="r.h5: RuntimeError: the job broke \\(raised in .*test_experiment_kind.py:"):
        run_plan(BrokenKind(), cfg, progress=False, log=lambda _: None)     # code of one's own: FAILED, named
    assert list(tmp_path.iterdir()) == []        # neither out/, out/deeper/ nor out/deeper/exp/ is left


def test_resume_checks_the_datasets_of_the_jobs_it_runs_not_of_the_kept_ones(tmp_path, monkeypatch):
    """A --resume whose every results file is kept reads no dataset: a dataset moved away since is no error."""
    from spikecl.errors import DataError
    from spikecl.experiment_kind import preflight

    @dataclass
    class DataKindConfig(RunHeader):
        kind: str = option("datakind", choices=("datakind",))

    class DataKind(Kind):
        name, config = "datakind", DataKindConfig

        def plan(self, cfg):
            config = {"data": {"dataset": "mnist", "data_dir": str(tmp_path / "moved"), "test_split_seed": 0,
                               "test_excludes": []}}
            return [Job(Path(cfg.output_dir) / cfg.name / "r.h5", lambda options: None, config=config)]

        def summarize(self, runs, detail=True):
            return "ok"

    monkeypatch.setattr(experiment_kind, "_REGISTERED", {})
    k = register_kind(DataKind())
    cfg = DataKindConfig(name="exp", output_dir=str(tmp_path))
    (job,) = k.plan(cfg)
    with pytest.raises(DataError):                       # a job to run: its missing dataset is refused up front
        preflight(k, cfg)
    write_run(job.path, "datakind", job.config)
    jobs, todo, device = preflight(k, cfg, resume=True)  # the one job is kept: nothing reads mnist
    assert todo == [] and [j.path for j in jobs] == [job.path]


def test_seed_runs_that_seed_alone_seed_0_included(toy, tmp_path):
    """--seed N replaces the file's seeds ([0, 1] here) by [N]: --seed 0 runs seed 0 alone, as --seed 1 runs 1."""
    assert run(toy, "--seed", "0") == 0
    assert [seed for seed, _ in RAN] == [0] and not (tmp_path / "toy" / "toy_seed1.h5").exists()
    RAN.clear()
    assert run(toy, "--seed", "1") == 0 and [seed for seed, _ in RAN] == [1]


def test_device_auto_is_cuda_exactly_where_torch_sees_it(monkeypatch):
    """resolve_device: 'cpu' stays the CPU; 'auto' is 'cuda' when torch.cuda.is_available() and 'cpu' when not;
    'cuda' is kept where it is available and refused in one line where it is not."""
    for available in (True, False):
        monkeypatch.setattr("torch.cuda.is_available", lambda: available)
        assert experiment_kind.resolve_device("auto") == ("cuda" if available else "cpu")
        assert experiment_kind.resolve_device("cpu") == "cpu"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert experiment_kind.resolve_device("cuda") == "cuda"
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^device: cuda requested but torch.cuda.is_available\(\) is false; use "
                                          r'device = "cpu"$'):
        experiment_kind.resolve_device("cuda")


@dataclass
class DataToyConfig(ToyConfig):
    kind: str = option("datatoy", choices=("datatoy",))
    data: dict[str, str] = field(default_factory=dict)


class DataToyKind(ToyKind):
    name = "datatoy"
    config = DataToyConfig


def test_data_dir_is_left_to_a_plugin_kind_with_a_data_table(toy, tmp_path):
    """--data-dir is refused for a kind with no data table, and left to a plugin kind that has one, whatever its
    dataset is called (its names are its own, even 'digits')."""
    register_kind(DataToyKind())
    with pytest.raises(ConfigError, match="^--data-dir: 'toy' experiments read no dataset; drop --data-dir$"):
        check_reads_data(toy, [])
    mine = tmp_path / "mine.toml"
    for table in ("", '[data]\ndataset = "digits"\n'):
        mine.write_text(f'kind = "datatoy"\n{table}')
        check_reads_data(mine, [])
