"""The command line: help, one-line errors with exit code 2, run + report end to end."""

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest

from spikecl.cli import main
from spikecl.errors import ConfigError, interrupt, raise_if_interrupted, watch_interrupts
from spikecl.experiment_kind import Job, JobOptions, run_jobs
from spikecl.remedies import command_line

SMALL = ('name = "cli"\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\nscenario = "task"\nn_tasks = 2\n'
         '[network]\nhidden = [32]\n[train]\nepochs = 1\neval_every = 10\n'
         '[strategy]\nmethods = ["finetune", "si"]\n')


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikecl.cli", *map(str, args)], capture_output=True, text=True)


def test_help_explains_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("run", "report", "--resume", "examples:"):
        assert word in out.stdout
    run_help = run_cli("run", "--help").stdout
    for flag in ("--set", "--device", "--seeds", "--resume", "--overwrite"):
        assert flag in run_help


def test_python_dash_m_spikecl_is_the_command_line(tmp_path):
    import spikecl

    version = subprocess.run([sys.executable, "-m", "spikecl", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and spikecl.__version__ in version.stdout
    missing = subprocess.run([sys.executable, "-m", "spikecl", "run", str(tmp_path / "none.toml")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "none.toml" in missing.stderr


@pytest.mark.parametrize("content, override, message", [
    ("[train]\nepocs = 2\n", [], "unknown key 'train.epocs'"),
    ("[train]\nepochs = -1\n", [], "train.epochs: -1 is below the minimum 1"),
    ("", ["--set", "network.encoder=spiky"], "network.encoder: 'spiky' is not allowed"),
    ("", ["--set", "strategy.methods=[\"ewx\"]"], "unknown method 'ewx'"),
    ('[data]\ndataset = "mnist"\ndata_dir = "/nonexistent"\n', [], "--data-dir"),
    ("", ["--output-dir", ""], "output_dir: empty; write '.' for the current folder"),
    ('[data]\ndataset = "mnist"\ndata_dir = "/nonexistent"\n', ["--data-dir", ""], "mnist needs its files"),
    ("", ["--set", "seeds=[5]", "--seed", "3"], "--seed and --set 'seeds=[5]' both set seeds; give one of them"),
    ("", ["--set", 'device="cuda"', "--device", "cpu"], "--device and --set 'device=\"cuda\"' both set device"),
    ("", ["--set", '"seeds"=[2]', "--seed", "1"], "--seed and --set '\"seeds\"=[2]' both set seeds"),
    ("", ["--set", 'data={dataset="mnist", data_dir="y"}', "--data-dir", "x"],
     "--data-dir and --set 'data={dataset=\"mnist\", data_dir=\"y\"}' both set data.data_dir"),
    ("", ["--set", 'output_dir="my results'], "--set 'output_dir=\"my results': '\"my results' is not a TOML value"),
    ("", ["--set", "train.lr=.001"], "'.001' is not a TOML number (TOML wants a digit on both sides of a decimal"),
    ("", ["--set", "train.epochs=007"], "train.epochs: expected an integer, got '007'"),
    ("", ["--set", "train.train_per_task=9"], "did you mean 'stream.train_per_task'?"),    # another table's key
    ("", ["--set", "epochs=1"], "unknown key 'epochs'; allowed keys: "),
    ("", ["--set", "epochs=1"], "; did you mean 'train.epochs'?"),
    ("", ["--set", "train..lr=0.1"], "--set train..lr: a dotted key has an empty part"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, content, override, message):
    exp = tmp_path / "bad.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + content)
    code = main(["run", str(exp), "--no-progress", *override])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("spikecl: error: ") and err.count("\n") == 1
    assert message in err


def test_a_table_set_that_would_drop_keys_is_refused_and_a_date_like_word_is_a_string():
    """``--set 'train={epochs=1}'`` replaced the file's [train] table: batch_size and eval_every went back to their
    defaults without a word. A table that keeps every key replaces, ``{}`` clears (then a new table may follow), one
    that would drop keys is refused naming them; a bare word TOML reads as a date is the word."""
    from spikecl.config import load_experiment

    with pytest.raises(ConfigError, match=r"^overrides=\['train=\{epochs=1\}'\] would replace the table train, "
                                          r"dropping .*batch_size.*: set its keys one by one "
                                          r"\(overrides=\['train.epochs=...'\]\), or clear it first "
                                          r"\(overrides=\['train=\{\}'\]\)$"):
        load_experiment("models/split_digits.toml", ["train={epochs=1}"])
    cfg = load_experiment("models/split_digits.toml", ["train={}", "train={epochs=1}", "name=2024-01-01"])
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.name) == (1, 64, "2024-01-01")     # batch_size's default
    assert load_experiment("models/split_digits.toml", ["name=007"]).name == "007"      # a word, as before
    variant = load_experiment("models/hlop_pmnist5k.toml", [           # its dotted keys, set as nested tables
        "variants.gpm-fixed-readout={method='gpm', strategy={gpm={thresholds=[0.5, 0.5, 1.0]}}}"])
    assert variant.variants["gpm-fixed-readout"]["strategy"] == {"gpm": {"thresholds": [0.5, 0.5, 1.0]}}
    assert load_experiment("models/split_digits.toml").train.batch_size == 32


def test_a_variants_quoted_dotted_keys_are_set_cleared_and_kept_as_the_tables_they_name():
    """A variant spells its settings as quoted dotted keys ("strategy.gpm.thresholds" = ...): ``--set
    'variants.gpm-tuned.strategy={}'`` left them in place, so the variant ran its thresholds unchanged without a word,
    and a nested setting of the same key lay beside the quoted one in the results file's config."""
    from spikecl.config import load_experiment, method_config

    def variant(*overrides):
        cfg = load_experiment("models/hlop_pmnist5k.toml", overrides)
        return cfg.variants["gpm-tuned"], method_config(cfg, "gpm-tuned")[0]

    spec, cfg = variant()
    assert (spec["strategy.gpm.thresholds"], cfg.strategy.options["gpm"]["thresholds"]) == ([0.7, 0.85, 1.0],) * 2
    spec, cfg = variant("variants.gpm-tuned.strategy={}")                    # cleared: the experiment's own
    assert spec == {"method": "gpm", "train.momentum": 0.9, "strategy": {}}
    assert cfg.strategy.options["gpm"]["thresholds"] == [0.95, 0.99, 0.99] and cfg.train.momentum == 0.9
    for override in ("variants.gpm-tuned.strategy.gpm.thresholds=[0.5, 0.6, 1.0]",
                     "variants.gpm-tuned.strategy={gpm={thresholds=[0.5, 0.6, 1.0]}}"):
        spec, cfg = variant(override)                                        # one spelling left, the new value
        assert spec == {"method": "gpm", "train.momentum": 0.9, "strategy": {"gpm": {"thresholds": [0.5, 0.6, 1.0]}}}
        assert cfg.strategy.options["gpm"]["thresholds"] == [0.5, 0.6, 1.0]
    with pytest.raises(ConfigError, match=r"^overrides=\['variants.gpm-tuned=\{method=\"gpm\"\}'\] would replace the "
                                          r"table variants.gpm-tuned, dropping strategy.gpm.thresholds, "
                                          r"train.momentum: "):
        variant('variants.gpm-tuned={method="gpm"}')


def test_quoted_table_headers_of_a_variant_and_variant_names_with_dots_keep_their_settings(tmp_path):
    """A variant's ``[variants.h."strategy.gpm"]`` table is the one ``strategy.gpm`` names: replacing it by a table
    without its ``samples`` is refused (it was silently dropped); a variant named ``g.x`` is no key of ``g``."""
    from spikecl.config import load_experiment, method_config

    path = tmp_path / "v.toml"
    path.write_text('name = "v"\n[data]\ndataset = "digits"\n[strategy]\nmethods = ["h", "g", "g.x"]\n'
                    '[variants.h]\nmethod = "gpm"\n[variants.h."strategy.gpm"]\nthresholds = [0.9, 0.9]\n'
                    'samples = 60\n[variants.g]\nmethod = "finetune"\n[variants."g.x"]\nmethod = "finetune"\n'
                    '"train.lr" = 0.01\n')
    with pytest.raises(ConfigError, match=r"would replace the table variants.h.strategy.gpm, dropping samples: "):
        load_experiment(path, ["variants.h.strategy.gpm={thresholds=[0.5, 0.5]}"])
    for override in ("variants.h.strategy.gpm={thresholds=[0.5, 0.5], samples=60}",
                     "variants.h.strategy.gpm.thresholds=[0.5, 0.5]"):
        cfg = load_experiment(path, [override])
        assert method_config(cfg, "h")[0].strategy.options["gpm"] == {"thresholds": [0.5, 0.5], "samples": 60}
    cfg = load_experiment(path, ['variants.g={method="ewc"}'])
    assert cfg.variants["g.x"] == {"method": "finetune", "train.lr": 0.01} and cfg.variants["g"] == {"method": "ewc"}
    path.write_text('name = "v"\n[data]\ndataset = "digits"\n[strategy]\nmethods = ["x"]\n[variants.x]\n'
                    'method = "ewc"\nstrategy.ewc.samples = 50\n[variants.x."strategy.ewc"]\nlam = 1e30\n')
    for override, lam in (([], 1e30), (["variants.x.strategy.ewc.lam=1.0"], 1.0),   # the quoted table's key too
                          (['variants.x."strategy.ewc".lam=2.0'], 2.0)):
        options = method_config(load_experiment(path, override), "x")[0].strategy.options["ewc"]
        assert (options["samples"], options["lam"]) == (50, lam), override


def test_every_path_argument_reads_a_leading_tilde_as_home(tmp_path, monkeypatch):
    """A quoted '~/x' or --opt=~/x reaches spikecl unexpanded: export -o and report --plots made a folder named '~'
    where run --output-dir went home."""
    from spikecl.cli import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    parser = build_parser()
    assert parser.parse_args(["export", "~/r.h5", "-o", "~/net.h5"]).output == tmp_path / "net.h5"
    assert parser.parse_args(["report", "~/r", "--plots", "~/p"]).plots == tmp_path / "p"
    assert parser.parse_args(["run", "~/e.toml"]).experiment == tmp_path / "e.toml"
    (tmp_path / "mine.py").write_text("X = 1\n")
    from spikecl.plugins import load_plugins

    assert load_plugins(["~/mine.py"]) == [str(tmp_path / "mine.py")]      # --plugin too, for Ray's workers


def test_a_reader_that_closed_the_output_early_is_said_on_stderr(tmp_path):
    """`spikecl run ... | head -1`: the run stops on the closed pipe (exit 141) and says why, and how to continue."""
    script = ("import sys\nimport spikecl.commands.run as run\n"
              "run.cmd_run = lambda args: (_ for _ in ()).throw(BrokenPipeError)\n"
              "from spikecl.cli import main\nsys.exit(main(['run', 'x.toml', '--overwrite']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 141
    assert done.stderr == ("spikecl: stopped: the reader of its output closed it; continue with --resume --overwrite "
                           "(what this run already replaced is kept)\n"), done.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_output_redirected_to_a_full_disk_is_one_line_not_a_traceback(tmp_path):
    """`spikecl report DIR > file` on a full disk (here /dev/full) stopped with a traceback from the table's print;
    now one line on stderr, exit 1. A file's own failed write (an OSError naming the file) is left to its code."""
    script = ("import sys\nimport spikecl.commands.run as run\n"
              "def cmd_run(args):\n    print('x' * 100000)\n    sys.stdout.flush()\n"
              "run.cmd_run = cmd_run\n"
              "from spikecl.cli import main\nsys.exit(main(['run', 'x.toml']))\n")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", script], stdout=full, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == ("spikecl: error: its output could not be written (No space left on device); results and "
                           "checkpoints written are whole; continue with --resume\n"), done.stderr
    named = script.replace("print('x' * 100000)\n    sys.stdout.flush()",
                           "raise OSError(28, 'No space left on device', 'r.h5')")
    done = subprocess.run([sys.executable, "-c", named], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_a_results_file_runs_again_as_the_run_it_records(tmp_path, capsys):
    """`spikecl run RESULTS.h5` makes the file's run again (a variant as a variant, its seed, its method's options,
    its thread count): the same numbers and config bit for bit; --resume keeps the file itself; a kind whose files
    record no one run says so in one line."""
    import numpy as np

    from spikecl.experiment_kind import kind
    from spikecl.io import read_run

    exp = tmp_path / "v.toml"
    exp.write_text(SMALL.replace('methods = ["finetune", "si"]', 'methods = ["slow"]')
                   + '[variants.slow]\nmethod = "ewc"\n"train.lr" = 0.02\n"strategy.ewc.lam" = 7.0\n')
    assert main(["run", str(exp), "--no-progress", "--no-plots", "--threads", "1", "--seed", "3",
                 "--output-dir", str(tmp_path / "a")]) == 0
    made = tmp_path / "a" / "cli" / "slow-seed3.h5"
    capsys.readouterr()
    assert main(["run", str(made), "--no-progress", "--no-plots", "--output-dir", str(tmp_path / "b")]) == 0
    assert f"note: {made} was computed with 1 torch thread; so is this run" in capsys.readouterr().out
    old, new = read_run(made), read_run(tmp_path / "b" / "cli" / "slow-seed3.h5")
    assert {**old.config, "output_dir": None} == {**new.config, "output_dir": None}
    assert (new.config["method"], new.config["train"]["lr"], new.config["seed"]) == ("slow", 0.02, 3)
    assert new.config["strategy"]["options"]["ewc"]["lam"] == 7.0
    for name in ("acc_matrix", "curves/accuracy", "model/layers.0.synapse.weight", "model/readout.heads.0.weight"):
        np.testing.assert_array_equal(old.array(name), new.array(name))
    assert main(["run", str(made), "--resume", "--no-progress", "--no-plots"]) == 0
    assert f"{made}: complete, kept" in capsys.readouterr().out
    moved = tmp_path / "elsewhere" / "mine" / "slow-seed3.h5"     # beside the file, wherever it lies now
    moved.parent.mkdir(parents=True)
    moved.write_bytes(made.read_bytes())
    assert main(["run", str(moved), "--resume", "--no-progress", "--no-plots"]) == 0
    assert f"{moved}: complete, kept" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"x.h5: a 'ca3' results file does not record one run to make again; run "
                                          "its experiment file$"):
        kind("ca3").experiment_of(dataclasses.replace(old, path=tmp_path / "x.h5", kind="ca3"))


def test_folder_names_outside_the_basic_plane_reach_the_config_as_given(tmp_path, capsys):
    """--output-dir and --data-dir with an emoji name the folder itself, not JSON's surrogate escapes of it."""
    exp = tmp_path / "e.toml"
    exp.write_text('[data]\ndataset = "mnist"\n')
    assert main(["run", str(exp), "--no-progress", "--data-dir", str(tmp_path / "d😀")]) == 2
    assert f"under {tmp_path / 'd😀'}" in capsys.readouterr().err
    exp.write_text(SMALL.replace('methods = ["finetune", "si"]', 'methods = ["finetune"]'))
    assert main(["run", str(exp), "--no-progress", "--no-plots", "--output-dir", str(tmp_path / "res😀")]) == 0
    assert (tmp_path / "res😀" / "cli" / "finetune-seed0.h5").is_file()


def test_corrupt_results_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and err.count("\n") == 1


def test_run_then_report(tmp_path):
    exp = tmp_path / "cli.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + SMALL)
    out = run_cli("run", exp, "--seeds", "0,1", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "finetune" in out.stdout and "si" in out.stdout and "±" in out.stdout
    folder = tmp_path / "cli"
    assert sorted(p.name for p in folder.glob("*.h5")) == [
        "finetune-seed0.h5", "finetune-seed1.h5", "si-seed0.h5", "si-seed1.h5"]
    assert (folder / "comparison.png").stat().st_size > 1000
    assert (folder / "si-seed1-curves.png").exists() and (folder / "si-seed1-matrix.png").exists()
    again = run_cli("run", exp, "--seed", "0", "--no-progress")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    report = run_cli("report", folder, "--no-plots", "--no-matrices")
    assert report.returncode == 0 and "ACC" in report.stdout and "2" in report.stdout


@pytest.mark.parametrize("flags, threads", [(["--threads", "1"], 1), (["--threads", "3"], 3), (["--nproc", "2"], None)])
def test_threads_are_chosen_and_recorded_in_the_results(tmp_path, flags, threads):
    """``--threads N`` sets torch's intra-op threads (per process); ``--nproc N`` alone gives each process its share
    of the cores, so N processes do not oversubscribe them; the results file records the count."""
    from spikecl.continual.results import read_continual

    exp = tmp_path / "cli.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + SMALL.replace('"finetune", "si"', '"finetune"'))
    out = run_cli("run", exp, *flags, "--no-progress", "--no-plots")
    assert out.returncode == 0, out.stderr
    recorded = read_continual(tmp_path / "cli" / "finetune-seed0.h5").environment["torch_threads"]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert recorded == (threads or max(1, usable // 2))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="sets a process's CPU affinity (Linux)")
def test_cores_are_those_the_process_may_run_on_not_the_machines():
    """A job pinned to one core (taskset, a batch scheduler's cgroup) shares that core, not the machine's count."""
    code = "from spikecl.launcher import cores; print(cores())"
    first = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {first}))
    assert out.stdout.strip() == "1", out.stderr


def test_processes_times_threads_are_at_most_four_per_cpu(capsys):
    import os

    most = 4 * os.cpu_count()
    with pytest.raises(SystemExit):
        main(["run", "x.toml", "--nproc", str(most + 1)])
    assert f"argument --nproc: expected a number of processes (at most 4 per CPU) from 1 to {most}" in \
        capsys.readouterr().err
    assert main(["run", "x.toml", "--nproc", "2", "--threads", str(most)]) == 2
    assert f"--nproc 2 x --threads {most}: at most {most} threads in all (4 per CPU)" in capsys.readouterr().err


def test_processes_times_threads_may_reach_four_per_cpu(monkeypatch, capsys):
    """Exactly 4 threads per CPU in all (--nproc 2 x --threads 2 per CPU) is allowed: the run goes on to read its
    file (missing here), as the limit's message says "at most"."""
    monkeypatch.setattr("spikecl.commands.run.limited_threads", lambda count: contextlib.nullcontext())
    assert main(["run", "x.toml", "--nproc", "2", "--threads", str(2 * os.cpu_count())]) == 2
    assert capsys.readouterr().err.strip() == "spikecl: error: experiment file not found: x.toml"


def test_threads_hold_while_the_command_runs_and_main_leaves_the_process_as_it_found_it(monkeypatch):
    """``spikecl.cli.main(["run", ..., "--threads", "1"])`` called from Python (a notebook) left torch's pool and
    the thread variables at 1 for the rest of the process."""
    import torch

    seen = []
    monkeypatch.setattr("spikecl.experiment_kind.run_file", lambda *a, **k: seen.append(
        (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS"))) or 0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["run", "x.toml", "--threads", "1", "--no-progress"]) == 0
        assert seen == [(1, "1", "1")]
        assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "3"
        assert "MKL_NUM_THREADS" not in os.environ
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("count", ["0", "100000"])
def test_threads_must_be_positive_and_at_most_four_per_cpu(capsys, count):
    """100,000 threads exhausted the process limit and failed as an interrupted run leaving a checkpoint."""
    import os

    with pytest.raises(SystemExit) as exit_:
        main(["run", "x.toml", "--threads", count])
    assert exit_.value.code == 2 and (f"argument --threads: expected a number of threads (at most 4 per CPU) from 1 "
                                      f"to {4 * os.cpu_count()}, got '{count}'") in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    exp = tmp_path / "cli.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + SMALL)
    assert main(["run", str(exp), "--device", "cuda", "--no-progress"]) == 2
    assert "cuda requested but torch.cuda.is_available() is false" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


def test_unknown_experiment_kind_is_one_line_error(tmp_path, capsys):
    exp = tmp_path / "k.toml"
    exp.write_text('kind = "telepathy"\n')
    assert main(["run", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "'telepathy' is not an experiment kind" in err and err.count("\n") == 1


HUGE_PAGE_PROBE = """
import os, sys
from spikecl import cli
cli.main(["report", sys.argv[1]])                     # any command: a one-line error here
import torch
block = torch.ones(16_000_000)                        # 64 MB
rollup = open("/proc/self/smaps_rollup").read()
huge = [int(line.split()[1]) for line in rollup.splitlines() if line.startswith("AnonHugePages:")]
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), huge[0] if huge else -1)
"""


@pytest.mark.parametrize("preset", [None, "0"])
def test_the_cli_asks_for_huge_pages_unless_told_otherwise(tmp_path, preset):
    """`spikecl` sets THP_MEM_ALLOC_ENABLE=1 before torch is imported (a user's own value stands), and where the
    kernel grants transparent huge pages on request, a large tensor then lives in them."""
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if preset is not None:
        env["THP_MEM_ALLOC_ENABLE"] = preset
    done = subprocess.run([sys.executable, "-c", HUGE_PAGE_PROBE, str(tmp_path / "missing.h5")], env=env,
                          capture_output=True, text=True, timeout=120)
    value, huge_kb = done.stdout.split()
    assert value == (preset or "1")
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    granted = mode.exists() and ("[always]" in mode.read_text() or "[madvise]" in mode.read_text())
    if granted and preset is None:
        assert int(huge_kb) >= 32 * 1024                   # most of the 64 MB block
    if preset == "0" and mode.exists() and "[madvise]" in mode.read_text():
        assert int(huge_kb) < 32 * 1024                   # not asked for: no huge pages under "madvise"


def test_progress_bars_are_drawn_only_on_a_terminal(monkeypatch):
    """A log file or a pipe gets no redrawn bar frames; a terminal gets the bar unless --no-progress."""
    import io
    import sys

    from spikecl.progress import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, drawn in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress_bar(3, "job", enabled=True) as bar:
            bar.update(3)
        assert ("3/3" in stream.getvalue()) == drawn
        with progress_bar(3, "job", enabled=False) as bar:
            bar.update(3)
        assert stream.getvalue().count("3/3") == (1 if drawn else 0)           # --no-progress: none on a terminal


@pytest.mark.parametrize("args, message", [
    (["run", "models/ca3_cam.toml", "--data-dir", "/tmp"], "--data-dir: 'ca3' experiments read no dataset"),
    (["report", "models/split_digits.toml"], "models/split_digits.toml is not an HDF5 results file; an experiment "
                                             "file? run it with: spikecl run models/split_digits.toml"),
    (["report", "models/sweeps/pmnist5k_lr.toml"], "models/sweeps/pmnist5k_lr.toml is not an HDF5 results file; a "
                                                   "sweep file? run it with: spikecl sweep models/sweeps/pmnist5k_lr"),
    (["report", "README.md"], "README.md is not an HDF5 results file"),
    (["deploy", "models/sweeps/pmnist5k_lr.toml"], "pmnist5k_lr.toml is not an HDF5 network file; spikecl deploy "
                                                   "runs what spikecl export writes, from a continual run's results"),
    (["deploy", "models/split_digits.toml"], "split_digits.toml is not an HDF5 network file; an experiment file? run "
                                             "it (spikecl run models/split_digits.toml), then export a results file"),
    (["report", "README.md", "--no-plots", "--plots", "x"], "argument --plots: not allowed with argument --no-plots"),
])
def test_flags_and_files_that_cannot_apply_are_named_in_one_line(args, message, capsys):
    """A flag the experiment's kind has no use for, a file of another format, or two flags that contradict each
    other: exit 2 with one line naming the flag or the file, not an unknown key or a corrupt file."""
    with pytest.raises(SystemExit) if "--no-plots" in args else contextlib.nullcontext():
        assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_threads_limit_numpys_blas_too_and_are_recorded():
    """``--threads`` reaches numpy's BLAS pool (a Sparsey run's matrix products), and one loaded later (scipy's own,
    which scikit-learn's datasets load), not only torch's, and results files record both counts."""
    code = ("from threadpoolctl import threadpool_info\nimport numpy, torch\n"
            "from spikecl.commands.run import limited_threads\nfrom spikecl.environment import environment\n"
            "with limited_threads(1):\n    import scipy.linalg\n    env = environment()\n"
            "    most = max(p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas')\n"
            "print(env['torch_threads'], env['blas_threads'], most)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "1"]


@pytest.mark.parametrize("command", ["export", "report"])
def test_sigterm_stops_every_command_as_ctrl_c_does(tmp_path, monkeypatch, capsys, command):
    """SIGTERM to `spikecl export` or `report` (or `deploy`) killed it with no message and left its temporary file;
    now it stops as `run` and `sweep` do: one line, exit status 130."""

    import spikecl.export.pipeline as pipeline
    import spikecl.report as report_module

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the command")

    if command == "export":
        monkeypatch.setattr(pipeline, "export_file", terminated)
        argv = ["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "net.h5")]
    else:
        monkeypatch.setattr(report_module, "report_paths", terminated)
        argv = ["report", str(tmp_path)]
    assert main(argv) == 130
    assert capsys.readouterr().err == "spikecl: interrupted\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_whose_interrupt_was_swallowed_still_stops_the_command(monkeypatch, capsys, signum):
    """CPython ignores a KeyboardInterrupt raised inside an import lock's or a weakref's callback (seen once as a
    Ctrl-C that let `spikecl run` finish and exit 0): the command remembers the signal and stops, exit 130."""
    import spikecl.report as report_module

    def swallowing(*args, **kwargs):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)
        except KeyboardInterrupt:               # as CPython does in such a callback
            pass
        return []

    monkeypatch.setattr(report_module, "report_paths", swallowing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)    # as from a terminal, also where the
    try:                                                                    # suite runs in a shell's background
        assert main(["report", "results"]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err == "spikecl: interrupted\n"
    try:
        raise_if_interrupted()                            # a library call after the command sees no stop
    except KeyboardInterrupt:
        pytest.fail("the stop said by the command was still pending after it")
    monkeypatch.setattr(report_module, "report_paths", lambda *args, **kwargs: [])
    assert main(["report", "results"]) == 0               # the next command starts afresh


def test_no_job_starts_after_a_stop_signal_the_last_one_swallowed(tmp_path):
    ran = []

    def swallowing(options):
        try:
            interrupt(signal.SIGTERM, None)
        except KeyboardInterrupt:
            pass
        ran.append(options)

    jobs = [Job(tmp_path / f"{i}.h5", swallowing) for i in range(2)]
    watch_interrupts(True)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_jobs(jobs, {}, JobOptions(False, False, False, "cpu"), False, print)
    finally:
        watch_interrupts(False)
    assert len(ran) == 1


def test_a_handler_a_library_wrapped_around_the_commands_stays_and_records_no_stop_after_it(monkeypatch, capsys):
    """Brian2 wraps the SIGINT handler it finds when first imported (during a CA3 run) to stop after a step; the
    command used to put the host's handler back over it, dropping Brian2's for the rest of the process. Now the
    wrapper stays, and Ctrl-C through it after the command is a plain KeyboardInterrupt that no later command or
    library call mistakes for a stop of its own."""
    import spikecl.report as report_module

    wrappers = []

    def wrapping(*args, **kwargs):
        inner = signal.getsignal(signal.SIGINT)

        def wrapper(signum, frame):
            return inner(signum, frame)

        wrappers.append(wrapper)
        signal.signal(signal.SIGINT, wrapper)
        return []

    monkeypatch.setattr(report_module, "report_paths", wrapping)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["report", "results"]) == 0
        assert signal.getsignal(signal.SIGINT) is wrappers[0]
        assert signal.getsignal(signal.SIGTERM) is not interrupt
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        raise_if_interrupted()                                  # no stop recorded outside a command
        monkeypatch.setattr(report_module, "report_paths", lambda *args, **kwargs: [])
        assert main(["report", "results"]) == 0
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_swallowed_after_a_nested_command_still_stops_the_outer_one():
    """A command that runs another through spikecl.cli.main: the inner block ending used to stop the watching, so
    a stop swallowed afterwards in the outer command was lost; blocks are counted now."""
    watch_interrupts(True)
    try:
        watch_interrupts(True)                           # the inner command's block
        watch_interrupts(False)
        try:
            interrupt(signal.SIGTERM, None)
        except KeyboardInterrupt:                        # swallowed
            pass
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    finally:
        watch_interrupts(False)
    raise_if_interrupted()                               # forgotten once the outermost block ends


def test_a_data_parallel_worker_remembers_a_stop_it_swallowed():
    """A spawned training process installs the stop handler outside any command's block: it must still record a
    stop whose KeyboardInterrupt CPython swallowed, so that no further job starts there."""
    code = ("import signal\nimport torch\nfrom spikecl import errors, launcher\n"
            "launcher._die_with_launcher = lambda: None\n"
            "torch.set_num_threads = lambda n: None\n"
            "def fn():\n"
            "    try:\n        errors.interrupt(signal.SIGTERM, None)\n    except KeyboardInterrupt:\n        pass\n"
            "    errors.raise_if_interrupted()\n    return 0\n"
            "try:\n    launcher._worker(0, 1, 0, 1, '.', fn, (), {})\nexcept SystemExit as exc:\n"
            "    print('exit', exc.code)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "exit 130", done.stdout + done.stderr



def test_an_ascii_terminal_gets_escaped_text_not_a_traceback(tmp_path):
    """``±`` and ``—`` in help texts and summaries are escaped where stdout cannot encode them (PYTHONIOENCODING
    = ascii, an LC_ALL=C terminal); a run still writes its results and plots."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([sys.executable, "-m", "spikecl.cli", "sweep", "--help"], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0 and "mean \\xb1 std" in done.stdout and not done.stderr
    exp = tmp_path / "exp.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + SMALL)
    run = subprocess.run([sys.executable, "-m", "spikecl.cli", "run", exp, "--seeds", "0,1", "--no-progress",
                          "--nproc", "2"], capture_output=True, text=True, env=env)     # rank 0 prints the summary
    assert run.returncode == 0 and "\\xb1" in run.stdout, run.stderr
    assert (tmp_path / "cli" / "comparison.png").exists()                    # drawn after the summary is printed


def test_a_closed_stdout_is_kept_from_the_files_a_command_opens():
    """Started with stdout closed, the command's first file would take descriptor 1 and receive what it prints."""
    code = ("import os, sys; from spikecl.terminal import guard_standard_streams; guard_standard_streams(); "
            "fd = os.open(os.devnull, os.O_RDONLY); print(fd, os.path.realpath(f'/proc/self/fd/1'), file=sys.stderr)")
    done = subprocess.run(f"exec 1>&-; {sys.executable} -c \"{code}\"", shell=True, capture_output=True, text=True)
    fd, one = done.stderr.split()
    assert int(fd) > 2 and one == os.devnull


def test_all_closed_standard_streams_leave_stdout_and_stderr_on_devnull(tmp_path):
    """Started with stdin, stdout and stderr closed (the lowest free descriptor is 0, not the stream's own), both
    output streams are still opened on /dev/null, so no file opened later takes descriptor 1 or 2."""
    out = tmp_path / "fds.txt"
    code = ("import os; from spikecl.terminal import guard_standard_streams; guard_standard_streams(); "
            "fd = os.open(os.devnull, os.O_RDONLY); names = [os.path.realpath(f'/proc/self/fd/{n}') for n in (1, 2)]; "
            f"open({str(out)!r}, 'w').write(' '.join([str(fd), *names]))")
    subprocess.run(f'exec 0<&- 1>&- 2>&-; exec {sys.executable} -c "$CODE"', shell=True, timeout=60,
                   env={**os.environ, "CODE": code})
    fd, one, two = out.read_text().split()
    assert int(fd) not in (1, 2) and one == two == os.devnull


def test_a_byte_order_mark_and_a_missing_reference_experiment(tmp_path, capsys):
    from spikecl.toml_files import load_toml

    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())                   # as some editors save UTF-8
    assert load_toml(bom)["data"] == {"dataset": "digits"}
    assert main(["run", "models/none.toml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "spikecl: error: experiment file not found: models/none.toml (the reference experiments are in the models/ "
        "folder of a spikecl checkout: run from its root or give the file's path)")


def test_a_pipe_or_a_folder_in_a_runs_places_is_named_before_anything_is_marked(tmp_path, capsys):
    exp = tmp_path / "cli.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + SMALL.replace('["finetune", "si"]', '["finetune"]'))
    folder = tmp_path / "cli"
    folder.mkdir()
    os.mkfifo(folder / "finetune-seed0.h5")
    for flags in ([], ["--overwrite"], ["--resume"]):                # no flag can replace it: none is suggested
        assert main(["run", str(exp), "--no-progress", *flags]) == 2
        assert capsys.readouterr().err.strip() == (f"spikecl: error: {folder}/finetune-seed0.h5 is not a regular file "
                                                   "(a device, pipe or socket) where a results file goes; move it away")
    assert sorted(p.name for p in folder.iterdir()) == ["finetune-seed0.h5"]      # no .replacing marker left
    (folder / "finetune-seed0.h5").unlink()
    (folder / "finetune-seed0.h5.lock").mkdir()
    assert main(["run", str(exp), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (f"spikecl: error: {folder}/finetune-seed0.h5.lock is a folder where a "
                                               "run's lock file goes; move it away")


def test_an_export_name_too_long_for_its_temporary_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    from spikecl.export import pipeline

    monkeypatch.setattr(pipeline, "load_trained", lambda *a: pytest.fail("loaded before the name was checked"))
    name = "n" * 250 + ".h5"                                  # legal itself; its temporary file's name is not
    assert main(["export", str(tmp_path / "r.h5"), "-o", str(tmp_path / name)]) == 2
    assert "is too long for its file system" in capsys.readouterr().err


def test_a_set_that_reaches_no_run_is_refused_naming_where_it_would(capsys):
    """--set of a key every run takes from its variant (or of a method no run uses) ran as if it had been applied;
    the variant's own key reaches it."""
    from spikecl.experiment_kind import load

    exp, tuned = "models/hlop_pmnist5k.toml", 'strategy.methods=["gpm-tuned"]'
    with command_line(), pytest.raises(ConfigError, match=r"^--set strategy\.gpm\.thresholds: every run that reads "
                                                        r"it is a variant setting it itself \(gpm-tuned\), so it "
                                                        r"would change nothing; set it in the variant, e\.g\. --set "
                                                        r"'variants\.gpm-tuned\.\"strategy\.gpm\.thresholds\""):
        load(exp, [tuned, "strategy.gpm.thresholds=[0.5]"])
    with pytest.raises(ConfigError, match=r"^overrides=\['train\.momentum=\.\.\.'\]: every run that reads it is a "
                                          r"variant"):                          # in Python: the overrides it passed
        load(exp, ['strategy.methods=["hlop-spikecl"]', "train.momentum=0.5"])
    assert load(exp, ['strategy.methods=["gpm-tuned", "gpm"]', "strategy.gpm.thresholds=[0.5]"])[1] is not None
    cfg = load(exp, [tuned, 'variants.gpm-tuned."strategy.gpm.thresholds"=[0.5]'])[1]
    assert cfg.variants["gpm-tuned"]["strategy.gpm.thresholds"] == [0.5]


@pytest.mark.parametrize("error", [MemoryError("Unable to allocate 2.12 GiB for an array with shape (227668, 2, 5000)"),
                                   RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't "
                                                "allocate memory: you tried to allocate 80000000000 bytes.")])
def test_running_out_of_memory_is_one_line(monkeypatch, capsys, error):
    """A run too large for the machine ended in an 18-frame MemoryError traceback (a CA3 stress size the config
    accepts; frames of events); another RuntimeError still raises."""
    from spikecl import cli

    def failing(exc):
        def build():
            parser = original()
            parser.commands["report"].set_defaults(handler=lambda args: (_ for _ in ()).throw(exc))
            return parser
        return build

    original = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", failing(error))
    assert main(["report", "x.h5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("spikecl: error: out of memory (") and len(err.strip().splitlines()) == 1
    assert "smaller sizes, fewer time steps or a smaller batch need less" in err
    monkeypatch.setattr(cli, "build_parser", failing(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["report", "x.h5"])


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "argument --seed: expected an integer in 0..4294967295, got '-1'"),
    (["--seed", "4294967296"], "argument --seed: expected an integer in 0..4294967295, got '4294967296'"),
    (["--seeds", "1,4294967296"], "argument --seeds: expected distinct integers in 0..4294967295, got '1,4294967296'"),
])
def test_a_seed_out_of_range_names_the_argument_typed(argv, message, capsys):
    """--seed -1 was refused as "seeds[0]: -1 is below the minimum 0", a key the user did not write."""
    with pytest.raises(SystemExit) as info:
        main(["run", "models/split_digits.toml", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_matplotlib_is_said_before_any_training_or_table(tmp_path, capsys, monkeypatch):
    """Without matplotlib ``spikecl run`` trained everything and then failed on the first plot, and ``report``
    printed its tables and then failed: both now say so first, naming --no-plots, and --no-plots needs none (nor
    tqdm, whose bars a run without it goes without)."""
    exp = tmp_path / "tiny.toml"
    exp.write_text(f'name = "tiny"\noutput_dir = "{tmp_path}"\nseeds = [0]\n[data]\ndataset = "digits"\n[stream]\n'
                   'n_tasks = 2\ntrain_per_task = 40\ntest_per_task = 20\n[network]\nhidden = [8]\n[train]\n'
                   'epochs = 1\n[strategy]\nmethods = ["finetune"]\n')
    for package in ("matplotlib", "tqdm", "tqdm.auto"):                     # as where they are not installed
        monkeypatch.setitem(sys.modules, package, None)
    message = ("spikecl: error: matplotlib is not installed, which the PNG plots need; install it with: pip install "
               "'spikecl[plots]', or pass --no-plots (plots=False)\n")
    assert main(["run", str(exp), "--no-progress"]) == 2
    assert capsys.readouterr().err == message and not (tmp_path / "tiny").exists()
    assert main(["run", str(exp), "--no-plots", "--seeds", "0,1"]) == 0                   # two jobs, a job bar
    out = capsys.readouterr().out
    assert "finetune-seed0.h5: ACC" in out and "finetune-seed1.h5: ACC" in out
    assert main(["report", str(tmp_path / "tiny")]) == 2
    captured = capsys.readouterr()
    assert captured.err == message and "ACC" not in captured.out
    assert main(["report", str(tmp_path / "tiny"), "--no-plots"]) == 0 and "ACC" in capsys.readouterr().out
    (tmp_path / "sweep.toml").write_text(f'base = "{exp}"\nname = "s"\n[grid]\n"train.lr" = [0.1]\n')
    assert main(["sweep", str(tmp_path / "sweep.toml"), "--dry-run"]) == 0          # draws nothing
