"""The fused LIF engine against the snnTorch reference: same spikes, recorded activity, losses, gradients, steps."""

import copy
import itertools

import pytest
import torch

from spikecl.config import NetworkConfig
from spikecl.differences import first_difference
from spikecl.errors import ConfigError
from spikecl.experiment_kind import RESUME_IGNORES
from spikecl.snn import LIFParams, SpikingLinear, build_cnn, build_mlp, build_network, encode, make_trainer
from spikecl.snn.fused import lif_sequence, lif_step, readout_weights
from spikecl.snn.trainers import TrainingHooks

CASES = list(itertools.product(("mlp", "cnn"), ("subtract", "zero"), ("direct", "poisson", "latency"), (1, 4, 7)))


class KeepActivity(TrainingHooks):
    """Keeps what the hooks see after backward: the batch's presynaptic activity and the gradients of ``net``."""

    uses_activity = True

    def __init__(self, net) -> None:
        self.net = net

    def after_backward(self, activity=None) -> None:
        self.activity = activity
        self.grads = {n: p.grad.clone() for n, p in self.net.named_parameters() if p.grad is not None}


def _problem(kind: str, reset: str, encoder: str, steps: int, seed: int = 0):
    """A random small network (snnTorch engine), an encoded batch [T, B, ...] and labels [B]."""
    torch.manual_seed(seed)
    neuron = LIFParams(beta=0.8, threshold=1.0, reset=reset, surrogate_slope=10.0)
    if kind == "mlp":
        net, x = build_mlp(20, [16, 12], 5, neuron, bias=True), torch.rand(6, 20)
    else:
        net, x = build_cnn((2, 8, 8), [4, 6], 5, neuron, init_gain=2.0), torch.rand(6, 2, 8, 8)
    return net, encode(x, steps, encoder, torch.Generator().manual_seed(seed + 1)), torch.randint(0, 5, (6,))


def _engines(net):
    """``net`` on the snnTorch engine and a deep copy (same parameters and buffers) on the fused one."""
    net.engine = "snntorch"
    fused = copy.deepcopy(net)
    fused.engine = "fused"
    return net, fused


def _train_step(net, x_seq, y):
    """One BPTT step (SGD with momentum): (loss, spikes by layer, activity, gradients)."""
    spikes = {}
    handles = [layer.pool.register_forward_hook(lambda m, inp, out, i=i: spikes.__setitem__(i, inp[0].detach()))
               for i, layer in enumerate(net.layers)]
    hooks = KeepActivity(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss = make_trainer("bptt", net, x_seq.shape[0]).train_encoded(x_seq, y, None, None, opt, hooks)
    for handle in handles:
        handle.remove()
    return loss, spikes, hooks.activity, hooks.grads


@pytest.mark.parametrize("kind,reset,encoder,steps", CASES)
def test_fused_engine_matches_snntorch(kind, reset, encoder, steps):
    reference, fused = _engines(_problem(kind, reset, encoder, steps)[0])
    _, x_seq, y = _problem(kind, reset, encoder, steps)
    _assert_same_step(reference, fused, x_seq, y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kind,reset,encoder", [("mlp", "subtract", "direct"), ("mlp", "zero", "poisson"),
                                                ("cnn", "subtract", "poisson"), ("cnn", "zero", "latency")])
def test_fused_engine_matches_snntorch_on_cuda(kind, reset, encoder):
    """On a GPU too (a direct input encoded there, so the static-input hoist runs on the device; convolutions in
    full float32, as on the CPU)."""
    net, x_seq, y = _problem(kind, reset, encoder, 4)
    reference, fused = _engines(net.cuda())
    x_seq = encode(x_seq[0].cuda(), 4, "direct") if encoder == "direct" else x_seq.cuda()
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        _assert_same_step(reference, fused, x_seq, y.cuda())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_sequence_on_cuda_is_the_cpus_bit_for_bit(reset):
    """The fused LIF function's elementwise kernels give the CPU's spikes and current gradients exactly."""
    torch.manual_seed(0)
    current, grad = torch.randn(9, 32, 50) * 0.8, torch.randn(9, 32, 50)
    beta, threshold = torch.tensor(0.85), torch.tensor(1.0)
    results = []
    for device in ("cpu", "cuda"):
        cur = current.detach().clone().to(device).requires_grad_()     # a leaf of its own on each device
        spikes = lif_sequence(cur, beta.to(device), threshold.to(device), 10.0, reset)
        spikes.backward(grad.to(device))
        results.append((spikes.detach().cpu(), cur.grad.cpu()))
    assert results[0][0].sum() > 0
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def _assert_same_step(reference, fused, x_seq, y):
    """One training step of each engine: the same spikes and recorded activity, losses and gradients to 1e-5."""
    ref, new = _train_step(reference, x_seq, y), _train_step(fused, x_seq, y)
    assert ref[1].keys() == new[1].keys() and all(torch.equal(ref[1][i], new[1][i]) for i in ref[1])
    assert any(s.sum() > 0 for s in ref[1].values())                    # the layers do fire
    assert float(new[0]) == pytest.approx(float(ref[0]), rel=1e-5, abs=1e-6)
    for name in reference.plastic_layers():
        assert torch.equal(ref[2].of(name), new[2].of(name)), name
    assert ref[3].keys() == new[3].keys()
    for name, grad in ref[3].items():
        torch.testing.assert_close(new[3][name], grad, rtol=1e-5, atol=1e-5 * grad.abs().max().item() + 1e-8,
                                   msg=name)
    for (name, a), b in zip(reference.state_dict().items(), fused.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)      # parameters and BN statistics


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_online_steps_give_leakys_spikes_and_membranes(reset):
    """Three online passes on each engine: every layer's spikes and membranes equal at every step."""
    net, x_seq, _ = _problem("mlp", reset, "poisson", 7)
    runs = []
    for model in _engines(net):
        trace = []
        for i, layer in enumerate(model.layers):
            def kept(*args, step=layer.step, i=i, **kwargs):
                spikes, mem = step(*args, **kwargs)
                trace.append((i, spikes, mem))
                return spikes, mem
            layer.step = kept
        with torch.no_grad():
            mems = list(model.online_steps(x_seq))
        runs.append((trace, mems))
    assert len(runs[0][0]) == len(runs[1][0]) == 7 * len(net.layers)
    for (i, s0, m0), (j, s1, m1) in zip(runs[0][0], runs[1][0]):
        assert i == j and torch.equal(s0, s1) and torch.equal(m0, m1)
    assert sum(s.sum() for _, s, _ in runs[0][0]) > 0
    assert all(torch.equal(a, b) for a, b in zip(*(r[1] for r in runs)))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("batch,width", [(5, 40), (33, 257)])
def test_lif_sequence_gradient_is_snntorch_bit_for_bit(reset, batch, width):
    """The currents' gradient of the fused function is autograd's through the snnTorch loop, exactly (also on sizes
    that leave a remainder after the vector lanes)."""
    torch.manual_seed(0)
    layer = SpikingLinear(3, width, LIFParams(beta=0.7, reset=reset), engine="snntorch")   # the reference loop
    current = (torch.randn(9, batch, width) * 0.8 + 0.5).requires_grad_()
    upstream = torch.randn(9, batch, width)
    ref = layer._fire(current)
    (ref_grad,) = torch.autograd.grad(ref, current, upstream)
    lif = layer.lif
    new = lif_sequence(current, lif.beta, lif.threshold, layer.neuron.surrogate_slope, reset)
    (new_grad,) = torch.autograd.grad(new, current, upstream)
    assert torch.equal(new, ref) and 0 < ref.mean() < 0.9
    assert torch.equal(new_grad, ref_grad)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_an_infinitely_negative_membrane_behaves_as_in_snntorch(reset):
    """A neuron driven to −inf stays there with a zero gradient on both engines, whole-sequence and online, as
    snnTorch's (1 − S)·U leaves it (a (U − U·S) reset would give NaN)."""
    layer = SpikingLinear(3, 2, LIFParams(beta=0.7, reset=reset), engine="snntorch")
    current = torch.tensor([[[-float("inf"), 1.5]]] * 4).requires_grad_()
    ref = layer._fire(current)
    (ref_grad,) = torch.autograd.grad(ref, current, torch.ones_like(ref))
    lif = layer.lif
    new = lif_sequence(current, lif.beta, lif.threshold, layer.neuron.surrogate_slope, reset)
    (new_grad,) = torch.autograd.grad(new, current, torch.ones_like(new))
    assert torch.equal(new, ref) and torch.equal(new_grad, ref_grad) and new_grad[:, 0, 0].eq(0).all()
    mem = None
    for t in range(4):
        spk, mem = lif_step(current[t].detach(), mem, lif.beta, lif.threshold, layer.neuron.surrogate_slope, reset)
        assert torch.equal(spk, ref[t]) and mem[0, 0] == -float("inf")


def test_readout_hoist_with_heads_and_bias():
    """The collapsed readout equals the stepped integrator for multi-head readouts with biases."""
    torch.manual_seed(0)
    reference, fused = _engines(build_mlp(10, [8], 4, LIFParams(beta=0.6), n_heads=3, bias=True))
    x, heads = torch.rand(5, 7, 10), torch.tensor([0, 1, 2, 2, 1, 0, 0])
    torch.testing.assert_close(fused(x, heads), reference(x, heads), rtol=1e-6, atol=1e-6)
    w = readout_weights(torch.tensor(0.5), 3, torch.float32)
    torch.testing.assert_close(w, torch.tensor([1.75, 1.5, 1.0]))


@pytest.mark.parametrize("trainer,kind,reset,encoder", [
    ("dsr", "cnn", "subtract", "direct"), ("online", "cnn", "subtract", "direct"), ("online", "cnn", "zero", "latency"),
    ("online", "mlp", "subtract", "poisson"), ("online", "mlp", "zero", "direct")])
def test_other_trainers_agree_across_engines(trainer, kind, reset, encoder):
    """DSR runs its forward pass on the fused engine (rate gradients need no time derivative); online training
    runs each step as one node per layer (:func:`lif_step`). Both give the reference's losses and gradients."""
    net, x_seq, y = _problem(kind, reset, encoder, 4)
    grads, losses = [], []
    for model in _engines(net):
        losses.append(float(make_trainer(trainer, model, 4).task_loss_backward(x_seq, y, None, None)))
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-5 * grad.abs().max().item() + 1e-8)


def test_engine_is_a_network_setting():
    assert NetworkConfig().engine == "fused" and build_mlp(4, [3], 2).engine == "fused"
    net = build_network(NetworkConfig(hidden=[5], engine="fused"), (1, 2, 3), 3)
    assert net.engine == "fused" and all(layer.engine == "fused" for layer in net.plastic_layers().values())
    net.engine = "snntorch"
    assert net.engine == "snntorch" and all(layer.engine == "snntorch" for layer in net.plastic_layers().values())
    with pytest.raises(ConfigError, match="engine"):
        net.engine = "jax"


def test_build_network_passes_the_configs_weight_gain_and_batch_norm():
    """network.init_gain scales the hidden weights of the MLP and of the CNN as build_mlp's and build_cnn's init_gain
    does (the same draws), and network.batch_norm = false builds the CNN without batch norm."""
    torch.manual_seed(0)
    mlp = build_network(NetworkConfig(hidden=[5], init_gain=0.5), (1, 2, 3), 3)
    torch.manual_seed(0)
    assert torch.equal(mlp.layers[0].synapse.weight, build_mlp(6, [5], 3, init_gain=0.5).layers[0].synapse.weight)
    torch.manual_seed(0)
    cnn = build_network(NetworkConfig(kind="cnn", channels=[4], init_gain=0.5, batch_norm=False), (1, 4, 4), 3)
    torch.manual_seed(0)
    reference = build_cnn((1, 4, 4), [4], 3, batch_norm=False, init_gain=0.5)
    assert torch.equal(cnn.layers[0].synapse.weight, reference.layers[0].synapse.weight)
    assert not any(".norm." in key for key in cnn.state_dict())


def test_results_from_either_engine_resume():
    """A kept results file made on the other engine, or before the option existed, is resumed, not refused."""
    new = {"network": {"engine": "fused", "beta": 0.9}}
    assert first_difference({"network": {"beta": 0.9}}, new, ignore=RESUME_IGNORES) is None
    assert first_difference({"network": {"engine": "snntorch", "beta": 0.9}}, new, ignore=RESUME_IGNORES) is None
    assert first_difference({"network": {"beta": 0.8}}, new, ignore=RESUME_IGNORES) == "network.beta"


def test_lif_sequence_backward_reuses_its_buffers_once():
    """The backward pass writes the gradient over the saved surrogate denominators: a second backward through the
    same graph is refused by autograd rather than silently wrong."""
    torch.manual_seed(1)
    current = (torch.randn(6, 4, 8) + 0.5).requires_grad_()
    spikes = lif_sequence(current, torch.tensor(0.8), torch.tensor(1.0), 25.0, "subtract")
    upstream = torch.randn_like(spikes)
    (first,) = torch.autograd.grad(spikes, current, upstream, retain_graph=True)
    assert first.abs().sum() > 0
    with pytest.raises(RuntimeError, match="inplace"):
        torch.autograd.grad(spikes, current, upstream)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_sequence_may_keep_its_buffers_in_the_currents(reset):
    """``overwrite_current``: the same spikes and gradients bit for bit, the currents' memory holding the surrogate's
    denominators; a current that another autograd node saved is refused at backward, never silently wrong."""
    torch.manual_seed(2)
    source = (torch.randn(7, 5, 9) + 0.6).requires_grad_()
    upstream = torch.randn(7, 5, 9)
    results = []
    for overwrite in (False, True):
        current = source * 1.5                                  # a fresh tensor nothing else saved
        before = current.detach().clone()
        spikes = lif_sequence(current, torch.tensor(0.8), torch.tensor(1.0), 25.0, reset, overwrite_current=overwrite)
        assert torch.equal(current.detach(), before) is not overwrite       # overwritten only when asked
        (grad,) = torch.autograd.grad(spikes, source, upstream)
        results.append((spikes, grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    saved = source.exp()                                        # exp's backward needs its output
    spikes = lif_sequence(saved, torch.tensor(0.8), torch.tensor(1.0), 25.0, reset, overwrite_current=True)
    with pytest.raises(RuntimeError, match="inplace"):
        torch.autograd.grad(spikes, source, upstream)


def test_a_layer_overwrites_only_currents_of_its_own(monkeypatch):
    """A spiking layer's currents are written over in training (the step's peak is one [T, B, N] buffer less) except
    where they are one step's currents repeated (direct input, no norm) or DSR's rate gradient still needs them."""
    import spikecl.snn.layers as layers

    seen = []
    original = layers.lif_sequence

    def spy(current, *args, overwrite_current=False, **kwargs):
        seen.append((current.stride(0) == 0, overwrite_current))
        return original(current, *args, overwrite_current=overwrite_current, **kwargs)

    torch.manual_seed(3)
    net = build_mlp(12, [10, 8], 4)
    x = torch.rand(5, 12)
    monkeypatch.setattr(layers, "lif_sequence", spy)
    net(encode(x, 3, "direct", None))                          # layer 1 repeats one step's currents
    net(encode(x, 3, "poisson", torch.Generator().manual_seed(0)))
    net(encode(x, 3, "poisson", torch.Generator().manual_seed(0)), rate_gradient=True)
    assert seen == [(True, False), (False, True), (False, True), (False, True), (False, False), (False, False)]


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_forward_hooks_see_the_currents_the_synapse_made(kind):
    """The fused engine keeps its buffers in the currents only where nothing else may hold them: a forward hook on a
    layer's synapse or normalisation (or a global one) sees W·s + b, as on the snnTorch engine."""
    net, x_seq, _ = _problem(kind, "subtract", "poisson", 4)
    net.engine = "fused"
    layer = net.layers[1]
    module = layer.synapse if kind == "mlp" else layer.norm
    seen = {}
    with torch.no_grad():
        inputs = net.layers[0](x_seq)
        expected = layer._current(inputs)
        for register in (module.register_forward_hook, torch.nn.modules.module.register_module_forward_hook):
            handle = register(lambda m, i, out: seen.setdefault(m, out.detach().clone() if m is not module else out))
            seen.clear()
            net(x_seq)
            handle.remove()
            torch.testing.assert_close(seen[module].reshape(expected.shape), expected, rtol=0, atol=0)


def test_networks_are_freed_with_their_neurons():
    """snnTorch lists every neuron it makes in a class-wide list; spikecl's neurons are not kept alive by it."""
    import gc
    import weakref

    import snntorch

    net, x_seq, _ = _problem("mlp", "subtract", "poisson", 4)
    net.engine = "snntorch"
    with torch.no_grad():
        net(x_seq)
    neurons = [weakref.ref(m) for m in net.modules() if isinstance(m, snntorch.SpikingNeuron)]
    assert len(neurons) == 3
    del net
    gc.collect()
    assert [n() for n in neurons] == [None] * 3


@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr", None])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_snntorch_neurons_keep_no_pass_alive(kind, trainer):
    """After a training step (or a forward pass with gradients, as EWC's Fisher passes make) on the snntorch engine,
    no neuron keeps a membrane: with its history it would hold the pass's autograd graph, with its gradient
    accumulators, until the next pass, and the batch's memory in any case; the step is the fused one's."""
    net, x_seq, y = _problem(kind, "subtract", "direct", 4)
    snn_net, fused_net = _engines(net)
    updated = []
    for model in (snn_net, fused_net):
        if trainer is None:
            torch.nn.functional.cross_entropy(model(x_seq), y).backward()
            updated.append([p.grad for p in model.parameters()])
            continue
        step = make_trainer(trainer, model, 4)
        step.train_encoded(x_seq, y, None, None, torch.optim.SGD(model.parameters(), lr=0.5))
        updated.append(list(model.parameters()))
    kept = {name: buffer.shape for name, buffer in snn_net.named_buffers() if name.endswith(".mem")}
    assert len(kept) == len(net.layers) + 1 and set(kept.values()) == {torch.Size([0])}
    for a, b in zip(*updated):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_a_float64_network_runs_on_either_engine(kind):
    """snnTorch's neurons fire float32 spikes whatever their input: the snntorch engine keeps the network's dtype."""
    net, x_seq, y = _problem(kind, "subtract", "poisson", 4)
    snn_net, fused_net = (model.double() for model in _engines(net))
    with torch.no_grad():
        logits = [model(x_seq.double()) for model in (snn_net, fused_net)]
    assert logits[0].dtype == torch.float64
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape", [(24, 5, 8, 12), (3, 4, 2, 6, 10)])
def test_spike_pooling_is_avg_pool2d_bit_for_bit(shape):
    """AvgPool2x2 on spike maps: torch's 2 x 2 average pooling exactly, forward and backward (any leading dims)."""
    from spikecl.snn.pooling import AvgPool2x2

    torch.manual_seed(0)
    spikes = (torch.rand(shape) < 0.3).float()
    grad = torch.randn(*shape[:-2], shape[-2] // 2, shape[-1] // 2)
    results = []
    for pool in (AvgPool2x2(), lambda x: torch.nn.AvgPool2d(2)(x.flatten(0, -4))):
        x = spikes.clone().requires_grad_()
        out = pool(x).reshape(grad.shape)
        out.backward(grad)
        results.append((out.detach(), x.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert results[0][0].unique().numel() > 2                      # windows with 1, 2, ... spikes


def test_spike_pooling_of_other_values_and_odd_sizes():
    """Real-valued inputs pool to float rounding; an odd grid drops its last row and column like nn.AvgPool2d."""
    from spikecl.snn.pooling import avg_pool_2x2

    torch.manual_seed(1)
    x = torch.randn(4, 3, 6, 8)
    torch.testing.assert_close(avg_pool_2x2(x), torch.nn.functional.avg_pool2d(x, 2), rtol=1e-6, atol=1e-7)
    odd = torch.randn(2, 3, 7, 5)
    assert torch.equal(avg_pool_2x2(odd), torch.nn.functional.avg_pool2d(odd, 2))
    assert avg_pool_2x2(odd).shape == (2, 3, 3, 2)


def test_a_network_mixing_engines_keeps_each_layer_s_and_bfloat16_refuses_any_snntorch_layer():
    """Layers built by hand may run on different engines: a NeuroBench measurement gives each its own back, and
    bfloat16 training is refused while any layer runs on the snnTorch engine (when built, or switched after)."""
    from spikecl.snn import SpikingNetwork
    from spikecl.snn.layers import Readout
    from spikecl.snn.measures import workload

    lif = LIFParams()

    def mixed():
        return SpikingNetwork([SpikingLinear(6, 5, lif, engine="snntorch"), SpikingLinear(5, 4, lif, engine="fused")],
                              Readout(4, 3, lif, engine="fused"), (6,), True, 0.9)

    net = mixed()
    workload(net, torch.rand(4, 6), 3)
    assert [layer.engine for layer in net.plastic_layers().values()] == ["snntorch", "fused", "fused"]
    with pytest.raises(ConfigError, match="the snnTorch engine is"):
        make_trainer("bptt", mixed(), 3, "direct", "bfloat16")
    net = build_mlp(6, [5], 3)
    trainer = make_trainer("bptt", net, 3, "direct", "bfloat16")
    net.layers[0].engine = "snntorch"
    with pytest.raises(ConfigError, match="the snnTorch engine is"):
        trainer.train_batch(torch.rand(2, 6), torch.tensor([0, 1]), None, None,
                            torch.optim.SGD(net.parameters(), lr=0.1))
