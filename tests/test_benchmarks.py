"""The benchmark scripts behind ``make bench`` start, explain themselves and print what they promise (at toy sizes;
no timing is asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from lava_support import checkout_env          # this checkout ahead of the caller's PYTHONPATH (gpu_check's wheels)

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py")
                    if p.name != "neurobench_compare.py")          # needs the neurobench package, not ours


def run(script: str, *args: str) -> str:
    env = {**checkout_env(), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("script", [p.name for p in BENCHMARKS])
def test_benchmark_explains_itself(script):
    out = run(script, "--help")
    assert out.startswith("usage:") and len(out.splitlines()) > 2


def test_strategy_overhead_prints_time_and_arithmetic_ratios():
    """At a toy size: every method gets its time and matrix-product FLOPs beside fine-tune's; fine-tune's ratios
    are 1 and HLOP's Hebbian learning and projection add arithmetic (a FLOP ratio above 1)."""
    out = run("strategy_overhead.py", "--hidden", "32", "--steps", "2", "--repeats", "1",
              "--methods", "finetune,hlop", "--engines", "fused", "--hlop", "neurons=[[4, 8, 5], [3]]")
    assert "HLOP schedule [[4, 8, 5], [3]];" in out                      # the schedule timed, as given
    ratios = dict(re.findall(r"^\s+(\w[\w-]*)\s+CPU .* matmul FLOPs\s+([\d.]+)x", out, flags=re.M))
    assert set(ratios) == {"finetune", "hlop"}, out
    assert float(ratios["finetune"]) == 1.0
    assert float(ratios["hlop"]) > 1.0
    assert "(goal <= 1.3x)" in out
    low, median, high = (float(v) for v in re.search(r"^\s+hlop .* per repeat ([\d.]+)x \(([\d.]+)-([\d.]+)\)",
                                                      out, flags=re.M).group(2, 1, 3))
    assert low == median == high                          # one repeat: its ratio, three times
    memory = dict(re.findall(r"^\s+(\w[\w-]*)\s+CPU .* peak memory\s+[\d.]+ MiB \(([\d.]+)x\)$", out, flags=re.M))
    assert set(memory) == {"finetune", "hlop"} and float(memory["finetune"]) == 1.0, out


def test_gpu_check_refuses_in_one_line_without_a_gpu(tmp_path):
    """Where torch sees no CUDA device the GPU script runs nothing and says why (its parts are the gpu-marked tests
    and the --device cuda benchmarks, checked on a GPU machine)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")], cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("gpu_check:") and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def probe_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel holding the module ``gpu_kit_probe``."""
    folder.mkdir()
    wheel = folder / "gpu_kit_probe-1.0-py3-none-any.whl"
    info = "gpu_kit_probe-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("gpu_kit_probe.py", "ANSWER = 42\n")
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: gpu-kit-probe\nVersion: 1.0\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: spikecl-tests\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", f"gpu_kit_probe.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return wheel


@pytest.mark.parametrize("damaged", [False, True])
def test_gpu_check_unpacks_the_brought_wheels_first(tmp_path, damaged):
    """The wheels of `make gpu-kit` are unpacked into a folder of their own before anything else (then, without
    CUDA, the script refuses as above); wheels that do not install are refused in one line."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    wheel = probe_wheel(tmp_path / "wheels")
    if damaged:
        wheel.write_bytes(b"not a zip file")
    site = tmp_path / "site"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")], cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable, "WHEELS": str(tmp_path / "wheels"),
                               "WHEELS_TARGET": str(site)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    if damaged:
        assert "do not install" in done.stderr and not (site / "gpu_kit_probe.py").exists()
    else:
        assert "no torch that sees a CUDA device" in done.stderr
        assert "1 wheels from" in done.stdout and (site / "gpu_kit_probe.py").read_text() == "ANSWER = 42\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("network,reset", [("mlp", "subtract"), ("cnn", "zero")])
def test_engine_speed_times_the_contenders(network, reset):
    """One tiny round per network: a line per contender with its times, matrix-product FLOPs and peak memory; the
    fused engine dispatches fewer operators per step than the plain snnTorch loop and does less arithmetic (the
    direct input's synapse once instead of T times), about as much as the plain MLP loop with that product moved
    out of its loop by hand. Every contender's hidden layers have the reset asked for."""
    out = run("engine_speed.py", "--network", network, "--steps", "3", "--batch", "2", "--rounds", "1",
              "--seconds", "0.01", "--reset", reset)
    assert f", {reset} reset, direct input," in out
    rows = {name: (float(mflop), float(flop_ratio), int(count), float(mib), float(ratio))
            for name, mflop, flop_ratio, count, mib, ratio in
            re.findall(r"^\s+(fused engine|snnTorch engine|plain snnTorch|plain, input once)\s+CPU "
                       r".*?matmul\s+([\d.]+) MFLOP \(([\d.]+)x\)\s+(\d+) operators per step\s+"
                       r"peak memory\s+([\d.]+) MiB \(([\d.]+)x plain\)$",
                       out, flags=re.M)}
    once = {"plain, input once"} if network == "mlp" else set()
    assert set(rows) == {"fused engine", "snnTorch engine", "plain snnTorch", *once}, out
    if once:
        assert rows["plain, input once"][1] == pytest.approx(1.0, abs=0.05)
        assert rows["plain, input once"][1] < rows["plain snnTorch"][1]
    assert rows["fused engine"][2] < rows["plain snnTorch"][2]
    assert rows["plain snnTorch"][4] == 1.0 and all(row[3] > 0 for row in rows.values())
    assert rows["fused engine"][1] == 1.0 and rows["plain snnTorch"][1] > 1.0
    assert rows["plain snnTorch"][0] == pytest.approx(rows["fused engine"][0] * rows["plain snnTorch"][1], rel=0.01)


def test_peak_memory_follows_allocations_and_frees_in_time_order():
    """engine_speed's CPU peak memory: the most bytes live at once during the step, not the sum allocated."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from engine_speed import peak_memory
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import torch

    mib = 1 << 20

    def step():
        first = torch.ones(mib, dtype=torch.uint8)
        second = torch.ones(2 * mib, dtype=torch.uint8)                 # 3 MiB live
        del first
        third = torch.ones(mib, dtype=torch.uint8)                      # 3 MiB live again
        del second, third
        return torch.ones(mib // 2, dtype=torch.uint8)                  # 0.5 MiB, kept

    assert peak_memory(step, torch.device("cpu")) == 3 * mib                   # 4.5 MiB were allocated in all


def test_allocator_effect_measures_both_policies_in_fresh_processes():
    """One tiny round: both policies' time and page faults per step, and their ratio within the round."""
    out = run("allocator_effect.py", "--cases", "fused:2:8", "--rounds", "1", "--steps", "2")
    line = re.search(r"^\s+fused\s+T=2\s+batch 8:\s+default\s+([\d.]+) ms \(wall\s+([\d.]+)\)\s+(\d+) faults\s+kept\s+"
                     r"([\d.]+) ms \(wall\s+([\d.]+)\)\s+(\d+) faults\s+default / kept per round ([\d.]+)x "
                     r"\(([\d.]+)-([\d.]+)\)$", out, flags=re.M)
    assert line, out
    default_ms, default_wall, _, kept_ms, kept_wall, _, ratio, low, high = (float(v) for v in line.groups())
    assert default_ms > 0 and kept_ms > 0 and default_wall > 0 and kept_wall > 0
    assert ratio == low == high == pytest.approx(default_ms / kept_ms, rel=0.02)      # one round: its ratio


def test_allocator_effect_rejects_a_bad_case_in_one_line():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "allocator_effect.py"), "--cases", "fused:8"],
                          cwd=ROOT, env=checkout_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "'fused:8' is not engine:T:batch" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("script, args, message", [
    ("ca3_speed.py", ["--batches", "abc", "--sizes", ""], "argument --batches: expected a batch size ≥ 1, got 'abc'"),
    ("ca3_speed.py", ["--precision", "float16"], "argument --precision: 'float16' is not one of float64, float32"),
    ("ca3_speed.py", ["--size", "0"], "argument --size: expected N or CxM with C, M >= 1, got '0'"),
    ("export_lava.py", ["--sizes", "abc"], "argument --sizes: expected a layer width ≥ 1, got 'abc'"),
    ("distributed_throughput.py", ["--methods", "finetune,bogus"], "strategy.methods: unknown method 'bogus'"),
    ("sdr_scaling.py", ["--model", "/nonexistent.toml"], "experiment file not found: /nonexistent.toml"),
    ("sdr_scaling.py", ["--model", "models/sparsey_digits.toml"],
     "--model models/sparsey_digits.toml: its data.dataset is 'digits'; part 2 times learning MNIST-5k"),
    ("ca3_lava.py", ["--learning", "fixed", "--cells", "lif"], "--learning fixed: --cells lif does not apply"),
    ("cuda_graph_memory.py", ["--engines", "fused,bogus"],
     "argument --engines: 'bogus' is not one of fused, triton, snntorch"),
    ("strategy_overhead.py", ["--methods", "gpm"], "--methods: include finetune, the reference every ratio is taken"),
    ("sdr_scaling.py", ["--points", "0,100000000"], "100000000 stored items: at most 1000000"),
    ("sdr_scaling.py", ["--window", "99999999"], "argument --window: expected a number of items from 1 to 10000"),
])
def test_bad_options_are_refused_in_one_line_before_any_work(script, args, message):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=checkout_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr.strip().splitlines()[-1], done.stderr[-1000:]
    assert not done.stdout.strip(), done.stdout                  # nothing timed first


def run_all(tmp_path: Path, scripts: str) -> tuple[subprocess.CompletedProcess, list[Path]]:
    """``benchmarks/run_all.sh`` (``make bench``) over toy scripts in ``tmp_path``, its logs in tmp_path/out."""
    env = {**os.environ, "BENCH_DIR": str(tmp_path), "BENCHMARKS": scripts, "BENCH_OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_all.sh"), sys.executable], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return done, sorted((tmp_path / "out").glob("*.log"))


def test_make_bench_keeps_every_run_in_a_log_of_its_own(tmp_path):
    """Each run's output, under a header naming the machine and the commit, goes to a new log (an earlier one is
    never written over); a failing benchmark stops the run with its status, and the log keeps what ran."""
    (tmp_path / "fast.py").write_text("print('fused 1.00x, plain 2.50x')\n")
    (tmp_path / "broken.py").write_text("import sys\nprint('half way')\nsys.exit(3)\n")
    first, logs = run_all(tmp_path, "fast")
    assert first.returncode == 0, first.stderr
    text = logs[0].read_text()
    assert text.startswith("# make bench, ") and "CPUs" in text and "Python" in text
    from spikecl.environment import cpu_model
    assert f"# {cpu_model()}, " in text                                  # the CPU with its family and model
    assert f"## {tmp_path}/fast.py" in text and "fused 1.00x, plain 2.50x" in text
    second, logs = run_all(tmp_path, "fast broken fast")
    assert second.returncode == 3 and len(logs) == 2
    assert logs[0].read_text() == text                                     # the first run's log is untouched
    failed = logs[1].read_text()
    assert "half way" in failed and "broken.py failed (exit 3)" in failed
    assert failed.count(f"## {tmp_path}/fast.py") == 1                     # nothing after the failure ran
    missing, _ = run_all(tmp_path, "fast absent")
    assert missing.returncode == 2 and missing.stderr.strip() == f"run_all: no benchmark {tmp_path}/absent.py"


def test_make_bench_runs_started_in_the_same_second_keep_a_log_each(tmp_path):
    """The log's name is the start time: a run that finds it taken (made by another run this second) waits for the
    next name, rather than both writing into one file."""
    (tmp_path / "tag.py").write_text("import os\nprint('run', os.environ['TAG'])\n")
    env = {**os.environ, "BENCH_DIR": str(tmp_path), "BENCHMARKS": "tag", "BENCH_OUT": str(tmp_path / "out")}
    runs = [subprocess.Popen(["bash", str(ROOT / "benchmarks" / "run_all.sh"), sys.executable], cwd=ROOT,
                             env={**env, "TAG": tag}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for tag in "AB"]
    kept = {run.communicate(timeout=120)[0].strip().splitlines()[-1] for run in runs}
    logs = sorted((tmp_path / "out").glob("*.log"))
    assert len(kept) == 2 and len(logs) == 2, kept
    assert sorted(line for log in logs for line in log.read_text().splitlines() if line.startswith("run ")) == \
        ["run A", "run B"]


def test_sdr_scaling_runs_from_an_empty_store_and_points_closer_than_its_window():
    """Each point learns --window more items while it is timed: at 60, 20 items past 50, the coder holds 70, which
    the row says (timing distinct items from there)."""
    out = run("sdr_scaling.py", "--skip-mnist", "--points", "0,50,60,61", "--window", "20")
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [row[0] for row in rows] == ["0", "50", "70", "90"] and rows[0][7:] == ["1.00x", "1.00x"]
    assert all(float(row[i]) > 0 and re.fullmatch(r"\([\d.]+\)", row[i + 1]) for row in rows for i in (1, 3, 5))


@pytest.mark.parametrize("device, said", [("meta", "a meta tensor holds no values"), ("hpu", "No module named"),
                                          ("foo", "Expected one of cpu")])
def test_a_device_torch_cannot_compute_on_is_an_argparse_error(device, said):
    import argparse

    from spikecl.commands import torch_device

    assert torch_device("cpu") == "cpu"
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{device!r} is not a device torch can use here .*{said}"):
        torch_device(device)


def test_epoch_time_gives_wall_and_cpu_time_of_every_contender_against_the_fused_engine():
    """Warm-up, then repeats from the same state: each contender's wall and CPU seconds and their ratios to the
    fused engine (1.00x for itself), the plain snnTorch loop among them."""
    out = run("epoch_time.py", "--samples", "128", "--hidden", "16", "--repeats", "2")
    assert "interleaved repeats from the same state after a warm-up" in out
    rows = {m.group(1).strip(): m.groups()[1:] for m in re.finditer(
        r"^  (.{18})  wall +([\d.]+) s +([\d.]+)x  CPU +([\d.]+) s +([\d.]+)x", out, flags=re.M)}
    assert {"spikecl fused", "spikecl snnTorch", "plain snnTorch"} <= set(rows), out
    assert rows["spikecl fused"][1] == rows["spikecl fused"][3] == "1.00"
    fused_wall, _, fused_cpu, _ = map(float, rows["spikecl fused"])
    for wall, wall_ratio, cpu, cpu_ratio in (map(float, row) for row in rows.values()):
        for seconds, ratio, fused in ((wall, wall_ratio, fused_wall), (cpu, cpu_ratio, fused_cpu)):
            rounding = ratio * (0.0006 / fused + 0.0006 / seconds) + 0.006      # printed to 3 and 2 decimals
            assert seconds > 0 and ratio == pytest.approx(seconds / fused, abs=rounding)


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_engine_speed_contenders_share_the_reset(network):
    """``--reset zero`` reaches the plain loop's Leaky neurons and spikecl's layers alike."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from engine_speed import PlainCNN
        from epoch_time import PlainSNN
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    plain = PlainSNN(8, reset="zero") if network == "mlp" else PlainCNN(reset="zero")
    hidden = [m for name, m in plain.named_modules() if name.startswith(("lif1", "lif2", "lifs."))]
    assert hidden and all(m.reset_mechanism == "zero" for m in hidden)
    assert plain.out.reset_mechanism == "none"
