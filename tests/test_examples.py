"""Every example script runs to the end and prints its results."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
#: arguments an example runs with here: the Sparsey protocol's small MNIST-5k version takes about four CPU minutes, its
#: version on scikit-learn's 8x8 digits runs the same protocol (selection on validation, test splits read once, every
#: row) in about 20 s, here on a test split that leaves out seed 0's and 1000's test images;
#: models/sparsey_mnist5k.toml is loaded in tests/test_sparsey.py
ARGS = {"sparsey_protocol.py": ["--dataset", "digits", "--test-split-seed", "2000", "--test-excludes", "0", "1000"],
        "custom_kind.py": ["--out", "kept"]}
#: a file an example keeps where its arguments say (custom_kind printed where its plot was, then removed it)
KEPT = {"custom_kind.py": "kept/rate_curve/rate_curve.png"}
#: what an example prints when it ran to the end (default: an ACC column)
PRINTS = {"custom_kind.py": "spikecl.report on the folder:\nLIF rate"}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    out = subprocess.run([sys.executable, str(script), *ARGS.get(script.name, [])], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert PRINTS.get(script.name, "ACC") in out.stdout
    assert script.name not in KEPT or (tmp_path / KEPT[script.name]).stat().st_size > 5000


def test_the_sparsey_protocol_stopped_by_ctrl_c_says_how_to_continue_in_one_line(tmp_path):
    """Ctrl-C printed a 28-line traceback; now one line, exit status 130, the measurements made kept."""
    import signal

    script = next(p for p in EXAMPLES if p.name == "sparsey_protocol.py")
    out = tmp_path / "protocol.json"
    proc = subprocess.Popen([sys.executable, str(script), "--dataset", "digits", "--out", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,    # a test worker may ignore
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # SIGINT: not inherited
    assert proc.stdout.readline().startswith("validation (seed 100): ")      # one measurement made and kept
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err == ("sparsey_protocol: interrupted; with --out, the same command continues "
                                              "from the measurements kept in <out>.partial\n")
    assert (tmp_path / "protocol.json.partial").is_file() and not out.exists()


def test_the_sparsey_protocol_refuses_an_existing_out_file_before_any_work(tmp_path):
    kept = tmp_path / "protocol.json"
    kept.write_text('{"keep": "me"}')
    script = next(p for p in EXAMPLES if p.name == "sparsey_protocol.py")
    out = subprocess.run([sys.executable, str(script), "--dataset", "digits", "--out", str(kept)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and out.stdout == "" and kept.read_text() == '{"keep": "me"}'
    assert out.stderr.splitlines()[-1] == (f"sparsey_protocol.py: error: --out: {kept} exists; pass --overwrite to "
                                           "replace it")


def test_the_sparsey_protocol_measures_on_the_test_split_it_is_given(monkeypatch):
    """--test-split-seed and --test-excludes reach every run's [data] table (the blind split of docs/sdr.md)."""
    import importlib.util

    script = next(p for p in EXAMPLES if p.name == "sparsey_protocol.py")
    spec = importlib.util.spec_from_file_location("sparsey_protocol", script)
    protocol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protocol)
    monkeypatch.setattr(protocol, "run_seed", lambda cfg, seed, progress: {"metrics": cfg.data})
    data = protocol.measure("digits", [], 0, "test", small=True, test_split=(2000, [0, 1000]))
    assert (data.test_split_seed, data.test_excludes, data.eval_split) == (2000, [0, 1000], "test")
    assert protocol.measure("digits", [], 0, "validation", small=True).test_excludes == []


def test_a_killed_sparsey_protocol_continues_from_its_kept_measurements(tmp_path, monkeypatch):
    """The protocol (about 20 minutes at --full) kept nothing when killed: each measurement is now kept as it ends
    beside --out and reused by a rerun of the same spikecl source, not by another's."""
    import importlib.util

    script = next(p for p in EXAMPLES if p.name == "sparsey_protocol.py")
    spec = importlib.util.spec_from_file_location("sparsey_protocol", script)
    protocol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protocol)
    calls = []
    monkeypatch.setattr(protocol, "measure", lambda *args, **kwargs: calls.append(args) or {"acc": 0.1 * len(calls)})
    kept = tmp_path / "out.json.partial"
    first = protocol.Measured(kept)
    assert first("digits", [], 100, "validation", True, (1000, [])) == {"acc": 0.1}
    assert first("digits", ["x=1"], 0, "test", True, (1000, [])) == {"acc": 0.2} and len(calls) == 2
    again = protocol.Measured(kept)                       # a rerun after a kill: nothing measured twice
    assert again("digits", ["x=1"], 0, "test", True, (1000, [])) == {"acc": 0.2} and len(calls) == 2
    assert again("digits", ["x=1"], 1, "test", True, (1000, [])) == {"acc": 0.30000000000000004}
    monkeypatch.setattr(protocol, "environment", lambda: {"spikecl_source": "other"})
    assert protocol.Measured(kept)("digits", [], 100, "validation", True, (1000, [])) == {"acc": 0.4}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_explains_itself_and_refuses_arguments_it_does_not_know(script, tmp_path):
    """--help prints the example's own description and runs nothing; an unknown argument is an error, not a run."""
    helped = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    first = " ".join(script.read_text().split('"""')[1].split()[:6])
    assert helped.returncode == 0 and first in " ".join(helped.stdout.split()) and "ACC" not in helped.stdout
    refused = subprocess.run([sys.executable, str(script), "--no-such-option"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
    assert refused.returncode == 2 and "unrecognized arguments: --no-such-option" in refused.stderr
    assert refused.stdout == "" and not list(tmp_path.iterdir())
