"""Bad experiment files are refused before any work, in one line naming the problem: encodings, names that would
write outside the output folder, repeated or oversized seeds, empty or oversized layers, absurd learning rates."""

import re
from pathlib import Path

import pytest

from spikecl.cli import main
from spikecl.config import experiment_from_dict, load_experiment
from spikecl.errors import ConfigError

MODELS = Path(__file__).parents[1] / "models"


@pytest.mark.parametrize("raw, message", [
    ({"name": "../outside"}, "not a plain file name"),
    ({"name": "/tmp/abs"}, "not a plain file name"),
    ({"name": ".."}, "not a plain file name"),
    ({"name": ""}, "not a plain file name"),
    ({"seeds": [3, 1, 3]}, "seeds: 3 appears more than once"),
    ({"seeds": [10 ** 23]}, "does not fit in a 64-bit integer"),
    ({"seeds": [-1]}, "below the minimum 0"),
    ({"network": {"hidden": [0]}}, r"network.hidden\[0\]: 0 is below the minimum 1"),
    ({"network": {"hidden": [256, -5]}}, r"network.hidden\[1\]: -5 is below the minimum 1"),
    ({"network": {"hidden": [10 ** 12]}}, "above the maximum"),
    ({"network": {"kind": "cnn", "channels": [0]}}, r"network.channels\[0\]"),
    ({"train": {"lr": 1e308}}, "train.lr: 1e\\+308 is above the maximum 100.0"),
    ({"train": {"lr": float("nan")}}, "expected a finite number"),
    ({"train": {"weight_decay": 5.0}}, "train.weight_decay"),
])
def test_bad_values_are_config_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        experiment_from_dict(raw)


@pytest.mark.parametrize("encoding, message", [("utf-16", "not UTF-8 text"), ("latin-1", "not UTF-8 text")])
def test_a_file_that_is_not_utf8_is_one_line(tmp_path, capsys, encoding, message):
    path = tmp_path / "exp.toml"
    path.write_bytes('name = "café"\n'.encode(encoding))
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("argv, message", [
    (["run"], "the following arguments are required: experiment"),
    (["run", "x.toml", "--seed"], "argument --seed: expected one argument"),
    (["report"], "the following arguments are required"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["export", "x.h5", "--weight-bits", "many"], "expected a number of bits from 2 to 8, got 'many'"),
])
def test_argument_errors_are_one_line_naming_help(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert message in err and err.startswith("spikecl: error: ") and "--help)" in err


def test_resume_refuses_a_kept_result_made_with_another_config(tmp_path, capsys, monkeypatch):
    """--resume keeps finished results only when they were made with the requested settings; it names the first
    key that differs. Adding seeds (or methods) is not a change of settings: the new runs are added."""
    from test_bad_input_corpus import CONTINUAL

    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "tiny.toml"
    exp.write_text(CONTINUAL)
    assert main(["run", str(exp), "--no-progress", "--no-plots"]) == 0
    kept = tmp_path / "results" / "tiny" / "finetune-seed0.h5"
    before = kept.read_bytes()
    capsys.readouterr()
    assert main(["run", str(exp), "--resume", "--set", "train.lr=0.2", "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "train.lr differs" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert kept.read_bytes() == before
    assert main(["run", str(exp), "--resume", "--seeds", "0,1", "--no-progress", "--no-plots"]) == 0
    assert "finetune-seed0.h5: complete, kept\n" in capsys.readouterr().out
    assert kept.read_bytes() == before and (kept.parent / "finetune-seed1.h5").exists()
    assert main(["run", str(exp), "--resume", "--set", 'network.engine="snntorch"', "--no-progress", "--no-plots"]) == 0
    out = capsys.readouterr().out                 # kept, and said to be computed otherwise
    assert ("finetune-seed0.h5: complete, kept (made with network.engine = 'fused'; this run: 'snntorch'; the same "
            "maths, rounded otherwise)\n") in out and kept.read_bytes() == before


def test_the_python_api_refuses_bad_arguments_in_one_line(tmp_path):
    """The entry points a script calls (experiment_from_dict, ContinualRun, run_experiment, report_paths) name the
    problem as the CLI does, never a TypeError from deep inside."""
    from spikecl.continual.experiment import run_experiment
    from spikecl.continual.runner import ContinualRun, build_stream
    from spikecl.continual.strategies import build_strategy
    from spikecl.errors import ResultsError
    from spikecl.continual.results import read_continual
    from spikecl.report import report_paths

    cfg = experiment_from_dict({"data": {"dataset": "digits"}, "stream": {"n_tasks": 2, "train_per_task": 40},
                                "network": {"hidden": [8]}, "output_dir": str(tmp_path)})
    for call, message in (
            (lambda: experiment_from_dict(None), "an experiment config is a table (a dict, as TOML gives), got "
                                                 "NoneType"),
            (lambda: experiment_from_dict({"variants": {"v": 3}}), "variants.v: expected a table"),
            (lambda: ContinualRun(cfg, "finetune", "0"), "seed must be an integer in 0..2^32-1, got '0'"),
            (lambda: ContinualRun(cfg, "finetune", -1), "seed must be an integer"),
            (lambda: ContinualRun({"data": {}}, "finetune", 0), "cfg must be an ExperimentConfig"),
            (lambda: ContinualRun(cfg, "ewc+ewc", 0), "'ewc+ewc' names 'ewc' twice"),
            (lambda: run_experiment({"data": {}}), "cfg must be an ExperimentConfig"),
            (lambda: ContinualRun(cfg, None, 0), "method: expected a method name (a str such as 'ewc' or "
                                                 "'ewc+replay'), got None"),
            (lambda: build_strategy(3, None), "method: expected a method name"),
            (lambda: build_strategy("ewc", None, [("ewc", {})]), "build_strategy: options: expected a Mapping, got "
                                                                 "list"),
            (lambda: ContinualRun(cfg, "finetune", 0, stream="x"), "ContinualRun: stream: expected a Stream, got "
                                                                   "str; build_stream(cfg, seed) makes one"),
            (lambda: ContinualRun(cfg, "finetune", 0, execution="x"), "ContinualRun: execution: expected an "
                                                                      "Execution, got str"),
            (lambda: build_stream(cfg.to_dict(), 0), "build_stream: cfg: expected an ExperimentConfig, got dict"),
            (lambda: load_experiment(MODELS / "split_digits.toml", None), "overrides: expected a list of 'key=value' "
                                                                        "strings, got NoneType; give [] for none"),
            (lambda: load_experiment(MODELS / "ca3_cam.toml"), "ca3_cam.toml is a 'ca3' experiment, not a continual "
                                                             "one: load it with spikecl.experiment_kind.load(path)"),
            (lambda: load_experiment(MODELS / "sweeps" / "pmnist5k_lr.toml"),
             "pmnist5k_lr.toml is a sweep file (it names a base experiment): run it with spikecl sweep"),
            (lambda: read_continual(None), "read_run: path: expected a str or PathLike, got NoneType"),
            (lambda: load_experiment(MODELS / "split_digits.toml", [3]), "overrides: expected 'key=value' strings, "
                                                                         "got 3"),
            (lambda: report_paths(3), "report: expected results files or folders (a path or a list of them), got 3"),
            (lambda: report_paths([None]), "report: a results file or folder: expected a str or PathLike, got "
                                           "NoneType")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            call()
    (tmp_path / "plain_sweep.toml").write_text('base = "x.toml"\nmethods = ["finetune"]\n')     # no grid: a sweep too
    with pytest.raises(ConfigError, match="plain_sweep.toml is a sweep file"):
        load_experiment(tmp_path / "plain_sweep.toml")
    (tmp_path / "typo.toml").write_text('kind = "contineal"\n')
    with pytest.raises(ConfigError, match="^kind: 'contineal' is not allowed; choose one of continual; did you mean "
                                          "'continual'\\?$"):
        load_experiment(tmp_path / "typo.toml")
    for nothing in ([], None):
        with pytest.raises(ResultsError, match="no results files or folders given"):
            report_paths(nothing)
    with pytest.raises(ResultsError, match="^absent.h5: no such results file or folder$"):
        report_paths("absent.h5", plots=False)                     # one path as a string, not its characters
    with pytest.raises(ResultsError, match="^results/absent: no such results file or folder$"):
        report_paths("results/absent", plots=False)
    from spikecl.export.spec import load_trained

    with pytest.raises(ResultsError, match=r"^tests is a folder; name a results file \(.h5\) or checkpoint"):
        load_trained("tests")


def test_a_kept_result_another_process_replaces_meanwhile_is_named_when_the_run_ends(tmp_path, capsys, monkeypatch):
    """--resume keeps a finished file, then another process replaces it (e.g. an --overwrite with other settings)
    while this run trains the rest: the run ends naming that file, not with the summary's "report them
    separately" about a command the user never ran; its own new results are written."""
    import os

    from test_bad_input_corpus import CONTINUAL

    from spikecl.continual.runner import ContinualRun

    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "tiny.toml"
    exp.write_text(CONTINUAL)
    assert main(["run", str(exp), "--no-progress", "--no-plots"]) == 0
    kept = tmp_path / "results" / "tiny" / "finetune-seed0.h5"
    train_task = ContinualRun.train_task

    def replaced_meanwhile(self, task, bar=None):
        os.utime(kept, ns=(kept.stat().st_atime_ns, kept.stat().st_mtime_ns + 10**9))     # rewritten by another
        return train_task(self, task, bar)

    monkeypatch.setattr(ContinualRun, "train_task", replaced_meanwhile)
    capsys.readouterr()
    assert main(["run", str(exp), "--resume", "--seeds", "0,1", "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"spikecl: error: {kept.relative_to(tmp_path)}, which this --resume kept, was replaced or removed "
                   "by another process while this run ran; this run's own results are written: spikecl report "
                   f"{kept.parent.relative_to(tmp_path)} tables what is there once the other process has ended"), err
    assert (kept.parent / "finetune-seed1.h5").exists()


def test_an_overwrite_interrupted_in_a_process_that_lives_on_reads_as_unfinished(tmp_path, capsys, monkeypatch):
    """A notebook's kernel (or a Ray worker whose run failed) lives on after its --overwrite stopped: to another
    process the files it did not replace are still to be replaced by an --overwrite that did not finish, not by
    one running now (which would refuse the --resume --overwrite the interruption advises for as long as the kernel
    lives)."""
    import subprocess
    import sys

    from test_bad_input_corpus import CONTINUAL

    from spikecl.continual.runner import ContinualRun

    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "tiny.toml"
    exp.write_text(CONTINUAL)
    assert main(["run", str(exp), "--no-progress", "--no-plots"]) == 0
    with monkeypatch.context() as patched:
        patched.setattr(ContinualRun, "train_task", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        assert main(["run", str(exp), "--overwrite", "--no-progress", "--no-plots"]) == 130
    assert "continue with --resume --overwrite" in capsys.readouterr().err
    assert (tmp_path / "results" / "tiny" / "finetune-seed0.h5.replacing").exists()
    other = subprocess.run([sys.executable, "-m", "spikecl.cli", "report", "results/tiny", "--no-plots"],
                           capture_output=True, text=True, cwd=tmp_path)
    said = other.stdout + other.stderr
    assert "finetune-seed0.h5 is still to be replaced by an --overwrite that did not finish" in said, said
    assert main(["run", str(exp), "--resume", "--overwrite", "--no-progress", "--no-plots"]) == 0
    assert not (tmp_path / "results" / "tiny" / "finetune-seed0.h5.replacing").exists()


def test_files_an_overwrite_running_now_is_to_replace_are_left_to_it(tmp_path, capsys, monkeypatch):
    """A .replacing mark of an --overwrite process still running: --resume (with or without --overwrite) and a
    second --overwrite refuse in one line to run beside it, rather than call it unfinished and race it for the
    same files; once it has ended, --resume says it did not finish, as before."""
    from processes import sleeping
    from test_bad_input_corpus import CONTINUAL

    from spikecl.run_files import _start_time

    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "tiny.toml"
    exp.write_text(CONTINUAL)
    assert main(["run", str(exp), "--no-progress", "--no-plots"]) == 0
    mark = tmp_path / "results" / "tiny" / "finetune-seed0.h5.replacing"
    capsys.readouterr()
    with sleeping() as overwrite:
        mark.write_text(f"{overwrite.pid} {_start_time(overwrite.pid)}")
        for flags, said in ((["--resume"], "--resume: results/tiny/finetune-seed0.h5 is to be replaced by an "
                                            f"--overwrite running now (PID {overwrite.pid}); run again when it has "
                                            "finished"),
                            (["--resume", "--overwrite"], f"--overwrite running now (PID {overwrite.pid})"),
                            (["--overwrite"], "results/tiny/finetune-seed0.h5 is to be replaced by another "
                                              f"--overwrite running now (PID {overwrite.pid}); run again when it has "
                                              "finished")):
            assert main(["run", str(exp), *flags, "--no-progress", "--no-plots"]) == 2, flags
            err = capsys.readouterr().err.strip()
            assert said in err and len(err.splitlines()) == 1, (flags, err)
            assert mark.read_text().startswith(str(overwrite.pid))          # its mark left as it was
    assert main(["run", str(exp), "--resume", "--no-progress", "--no-plots"]) == 2
    assert "still to be replaced by an --overwrite that did not finish" in capsys.readouterr().err
