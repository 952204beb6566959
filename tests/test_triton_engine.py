"""The triton engine: the fused engine with each LIF pass one Triton kernel. Where there is no GPU the kernels run in
Triton's interpreter (conftest sets ``TRITON_INTERPRET=1``), on CPU tensors; on a GPU the ``gpu`` tests compare the
compiled kernels with the torch engine there."""

import copy
import importlib.util

import pytest
import torch

from spikecl.config import ConfigError, experiment_from_dict, triton_interpreted
from spikecl.errors import SpikeCLError
from spikecl.snn import LIFParams, build_cnn, build_mlp, encode, make_trainer
from spikecl.snn.fused import lif_sequence

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"


def _sequence(engine_kernels: bool, current, grad, beta, threshold, slope, reset, overwrite: bool = False):
    cur = current.clone().requires_grad_()
    fresh = cur * 1.0                                                   # a tensor of its own, exactly cur
    spikes = lif_sequence(fresh, beta, threshold, slope, reset, kernels=engine_kernels, overwrite_current=overwrite)
    assert torch.equal(fresh.detach(), current) is not overwrite        # written over only when asked
    spikes.backward(grad)
    return spikes.detach(), cur.grad


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("shape", [(1, 3, 5), (4, 8, 37), (9, 5, 3, 7, 7), (25, 2, 300)])
def test_triton_lif_is_the_torch_engine_bit_for_bit(reset, shape):
    """Spikes and current gradients equal the torch fused function's exactly (T = 1 to 25, conv-shaped maps,
    neuron counts that leave a partial block), also with the denominators written over the currents."""
    torch.manual_seed(0)
    current, grad = (torch.randn(shape) * 0.9 + 0.3).to(DEVICE), torch.randn(shape).to(DEVICE)
    beta, threshold = torch.tensor(0.85, device=DEVICE), torch.tensor(1.0, device=DEVICE)
    torch_spikes, torch_grad = _sequence(False, current, grad, beta, threshold, 10.0, reset)
    assert torch_spikes.sum() > 0 and (torch_spikes == 0).any()
    for overwrite in (False, True):
        kernel_spikes, kernel_grad = _sequence(True, current, grad, beta, threshold, 10.0, reset, overwrite)
        assert torch.equal(kernel_spikes, torch_spikes) and torch.equal(kernel_grad, torch_grad)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_triton_lif_fires_as_the_torch_engine_on_an_infinite_current(reset):
    """An overflowed current (+inf) fires; the zero reset then multiplies the membrane by 1 - S as the torch engine
    does (inf · 0 = NaN, which never fires again), where the kernel's select gave 0 and fired again later."""
    current = torch.tensor([float("inf"), 0.5, 0.7, 0.9, 0.2]).reshape(5, 1, 1).expand(5, 2, 3).contiguous()
    grad = torch.ones_like(current)
    beta, threshold = torch.tensor(0.9), torch.tensor(1.0)
    current, grad, beta, threshold = (v.to(DEVICE) for v in (current, grad, beta, threshold))
    torch_spikes, torch_grad = _sequence(False, current, grad, beta, threshold, 10.0, reset)
    kernel_spikes, kernel_grad = _sequence(True, current, grad, beta, threshold, 10.0, reset)
    assert torch.equal(kernel_spikes, torch_spikes)
    torch.testing.assert_close(kernel_grad, torch_grad, rtol=0, atol=0, equal_nan=True)     # NaN where they are
    assert torch_spikes[:, 0, 0].tolist() == ([1.0, 0.0, 0.0, 0.0, 0.0] if reset == "zero" else [1.0] * 5)


def test_triton_backward_reuses_its_buffers_once():
    """As the fused function: the gradient is written over the saved denominators (no [T, B, ...] buffer of its
    own), so a second backward through the same graph is autograd's in-place error, not a wrong gradient."""
    torch.manual_seed(1)
    current = (torch.randn(6, 4, 8) + 0.5).to(DEVICE).requires_grad_()
    spikes = lif_sequence(current * 1.0, torch.tensor(0.8, device=DEVICE), torch.tensor(1.0, device=DEVICE), 25.0,
                          "subtract", kernels=True)
    upstream = torch.randn_like(spikes)
    (first,) = torch.autograd.grad(spikes, current, upstream, retain_graph=True)
    assert first.abs().sum() > 0
    with pytest.raises(RuntimeError, match="inplace"):
        torch.autograd.grad(spikes, current, upstream)


@pytest.mark.parametrize("kind,reset,encoder,precision", [
    ("mlp", "subtract", "direct", "float32"), ("mlp", "zero", "poisson", "float32"),
    ("cnn", "subtract", "latency", "float32"), ("mlp", "subtract", "direct", "bfloat16"),
    ("cnn", "zero", "direct", "bfloat16")])
def test_triton_engine_trains_like_the_fused_engine(kind, reset, encoder, precision, monkeypatch):
    """One BPTT step on each engine from the same parameters: the same loss, gradients and weights, bit for bit
    (the hoists are the fused engine's; only the LIF passes differ), also with bfloat16 synapses (the currents
    reach the LIF passes in float32). cuDNN is held to deterministic convolutions: left free, it may pick another
    algorithm for each engine's pass (an H200 did, 1.9e-9 apart on a conv weight)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    torch.manual_seed(0)
    neuron = LIFParams(beta=0.8, threshold=1.0, reset=reset, surrogate_slope=10.0)
    if kind == "mlp":
        net, x = build_mlp(20, [16, 12], 5, neuron, bias=True), torch.rand(6, 20)
    else:
        net, x = build_cnn((2, 8, 8), [4, 6], 5, neuron, init_gain=2.0), torch.rand(6, 2, 8, 8)
    x_seq = encode(x, 4, encoder, torch.Generator().manual_seed(1)).to(DEVICE)
    y = torch.randint(0, 5, (6,)).to(DEVICE)
    results = []
    for engine in ("fused", "triton"):
        model = copy.deepcopy(net).to(DEVICE)
        model.engine = engine
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss = make_trainer("bptt", model, 4, precision=precision).train_encoded(x_seq, y, None, None, opt)
        results.append((float(loss), {n: p.detach().clone() for n, p in model.named_parameters()}))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(results[0][1][n], results[1][1][n]) for n in results[0][1])
    assert any(not torch.equal(p, q) for p, q in zip(results[0][1].values(), net.to(DEVICE).parameters()))


def test_triton_engine_is_refused_where_it_cannot_run(monkeypatch):
    """One-line errors: the CPU without the interpreter (config and call), and train.compile beside it."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    base = {"network": {"engine": "triton"}}
    with pytest.raises(ConfigError, match="'triton' runs on CUDA; device 'cpu' is the CPU here"):
        experiment_from_dict({**base, "device": "cpu"})
    if not CUDA:
        with pytest.raises(ConfigError, match="'triton' runs on CUDA; device 'auto' is the CPU here"):
            experiment_from_dict({**base, "device": "auto"})
    with pytest.raises(ConfigError, match="train.compile: the triton engine"):
        experiment_from_dict({**base, "device": "cuda", "train": {"compile": True}})
    assert experiment_from_dict({**base, "device": "cuda"}).network.engine == "triton"
    with pytest.raises(SpikeCLError, match="needs a CUDA device"):
        lif_sequence(torch.rand(3, 4), torch.tensor(0.9), torch.tensor(1.0), 10.0, "subtract", kernels=True)
    with pytest.raises(SpikeCLError, match="float32 currents"):
        lif_sequence(torch.rand(3, 4, dtype=torch.float64), torch.tensor(0.9), torch.tensor(1.0), 10.0, "zero",
                     kernels=True)


def test_the_other_engines_are_not_held_to_tritons_needs(monkeypatch):
    """Without Triton's interpreter the fused and snntorch engines still run on the CPU, compiled or not."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    for engine in ("fused", "snntorch"):
        cfg = experiment_from_dict({"network": {"engine": engine}, "device": "cpu", "train": {"compile": True}})
        assert (cfg.network.engine, cfg.train.compile) == (engine, True)


def test_triton_on_device_auto_follows_cuda_and_needs_the_package(monkeypatch):
    """device = "auto" takes the triton engine where CUDA is available; without the triton package the engine is
    refused by name when the config is read."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr("spikecl.config._cuda_available", lambda: True)
    assert experiment_from_dict({"network": {"engine": "triton"}, "device": "auto"}).network.engine == "triton"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "triton" else
                        find_spec(name, *rest))
    with pytest.raises(ConfigError, match="network.engine: 'triton' needs the triton package"):
        experiment_from_dict({"network": {"engine": "triton"}, "device": "cuda"})


@pytest.mark.parametrize("value", ["", "0", "false", "no", "OFF", "2", " 1"])
def test_triton_interpret_values_triton_reads_as_off_refuse_the_cpu(monkeypatch, value):
    """TRITON_INTERPRET values Triton reads as off ("false" and "2" too, not only "" and "0") leave its interpreter
    off: the CPU is refused when the config is read, not by a driver traceback at the first batch."""
    monkeypatch.setenv("TRITON_INTERPRET", value)
    assert not triton_interpreted()
    with pytest.raises(ConfigError, match="'triton' runs on CUDA; device 'cpu' is the CPU here"):
        experiment_from_dict({"network": {"engine": "triton"}, "device": "cpu"})


@pytest.mark.parametrize("value", ["1", "TRUE", "yes", "On", "y"])
def test_triton_interpret_values_triton_reads_as_on_are_the_interpreter(monkeypatch, value):
    monkeypatch.setenv("TRITON_INTERPRET", value)
    assert triton_interpreted()
    assert experiment_from_dict({"network": {"engine": "triton"}, "device": "cpu"}).network.engine == "triton"


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_compiled_triton_lif_on_cuda_is_the_cpus_bit_for_bit(reset):
    """The kernels compiled for the GPU (multiply-adds unfused) give the CPU torch engine's bits."""
    torch.manual_seed(0)
    current, grad = torch.randn(9, 32, 50) * 0.8, torch.randn(9, 32, 50)
    beta, threshold = torch.tensor(0.85), torch.tensor(1.0)
    cpu = _sequence(False, current, grad, beta, threshold, 10.0, reset)
    cuda = _sequence(True, current.cuda(), grad.cuda(), beta.cuda(), threshold.cuda(), 10.0, reset)
    assert torch.equal(cpu[0], cuda[0].cpu()) and torch.equal(cpu[1], cuda[1].cpu())


@pytest.mark.parametrize("method", ["finetune", "hlop"])
def test_a_continual_run_on_the_triton_engine_is_the_fused_runs(tmp_path, method):
    """Two tasks of permuted digits through the whole harness (hoists, activity recording, HLOP's projections and
    Hebbian updates, evaluation): the same accuracy matrix as the fused engine's, to the last bit."""
    from spikecl.continual.runner import ContinualRun

    results = {}
    for engine in ("fused", "triton"):
        cfg = experiment_from_dict({
            "name": engine, "output_dir": str(tmp_path), "device": DEVICE, "data": {"dataset": "digits"},
            "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 2},
            "network": {"hidden": [48], "num_steps": 4, "engine": engine},
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "eval_every": 0},
            "strategy": {"methods": [method], "hlop": {"neurons": [[8, 4], [4, 2]]}}})
        results[engine] = ContinualRun(cfg, method, 0).execute(progress_bar=False).acc_matrix
    assert results["fused"][-1].mean() > 0.5
    assert (results["triton"] == results["fused"]).all()


COMPILE_FOR_HOPPER = """
import json
from spikecl.snn.lif_triton import ptx_for_gpu
print(json.dumps({f"{name} {zero}": ptx for zero in (False, True) for name, ptx in ptx_for_gpu(90, 6, zero).items()}))
"""


def test_kernels_compile_for_a_hopper_gpu_without_fused_multiply_adds():
    """Without a GPU, Triton compiles both kernels for compute capability 9.0 (H100 / H200) with a launch's options:
    the PTX has no fused multiply-add and divides with round-to-nearest, as the bit-for-bit promise needs."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", COMPILE_FOR_HOPPER], cwd=root, capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ptx = json.loads(done.stdout)
    assert sorted(ptx) == ["backward False", "backward True", "forward False", "forward True"]
    for name, code in ptx.items():
        assert ".target sm_90" in code, name
        assert "fma." not in code, name
        assert ("div.rn.f32" in code) == name.startswith("backward") and "div.approx" not in code, name
