"""Spiking core: encoders, LIF layer dynamics, presynaptic records, online trace gradients, training."""

import numpy as np
import pytest
import torch

from spikecl.errors import ConfigError, ShapeError, SpikeCLError
from spikecl.snn import LIFParams, SpikingLinear, build_cnn, build_mlp, encode, evaluate, make_trainer
from spikecl.snn.encoders import latency
from spikecl.snn.layers import rate_coded, trace_synapse


def test_encoders():
    x = torch.tensor([[0.0, 0.25, 1.0]])
    assert torch.equal(encode(x, 3, "direct"), x.expand(3, 1, 3))
    g = torch.Generator().manual_seed(0)
    rates = encode(x.expand(2000, 3), 10, "poisson", g).mean(dim=(0, 1))
    np.testing.assert_allclose(rates.numpy(), [0.0, 0.25, 1.0], atol=0.01)
    a = encode(x, 10, "poisson", torch.Generator().manual_seed(1))
    b = encode(x, 10, "poisson", torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    lat = encode(x, 5, "latency")
    assert lat.sum(0).tolist() == [[0.0, 1.0, 1.0]]        # zero never fires, others once
    assert lat[:, 0, 2].argmax() == 0 and lat[:, 0, 1].argmax() == 3   # brighter fires earlier
    with pytest.raises(ConfigError, match="network.encoder"):
        encode(x, 3, "burst")


@pytest.mark.parametrize("steps", [1, 2, 6, 25])
def test_latency_code_is_its_definition(steps):
    """One spike at round((1 - x)(T - 1)), none for x <= 0, for random images with zeros, ones and out-of-range
    values, in float32 and float16."""
    g = torch.Generator().manual_seed(steps)
    x = torch.rand(40, 1, 7, 7, generator=g) * 1.4 - 0.2
    x[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
    for dtype in (torch.float32, torch.float16):
        xs = x.to(dtype)
        at = torch.round((1 - xs.clamp(0, 1)) * (steps - 1))
        expected = torch.stack([((at == t) & (xs > 0)).to(dtype) for t in range(steps)])
        got = encode(xs, steps, "latency") if dtype == torch.float32 else latency(xs, steps)   # encode: float32
        assert got.dtype == dtype and torch.equal(got, expected)
        assert torch.equal(got.sum(0), (xs > 0).to(dtype))


def test_poisson_code_clamps_out_of_range_intensities():
    """Poisson spikes have probability clamp(x, 0, 1): a normalised input above 1 fires at every step, one below 0
    never, and an input in range keeps its rate."""
    x = torch.tensor([[1.5, -0.3, 1.0, 0.0, 0.5]]).expand(400, 5)
    spikes = encode(x, 10, "poisson", torch.Generator().manual_seed(0))
    rates = spikes.mean(dim=(0, 1))
    assert spikes.shape == (10, 400, 5) and rates[:4].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert abs(float(rates[4]) - 0.5) < 0.03

def test_lif_layer_matches_hand_simulation():
    torch.manual_seed(0)
    neuron = LIFParams(beta=0.8, threshold=1.0)
    layer = SpikingLinear(3, 4, neuron)
    x = torch.rand(6, 2, 3)
    spikes = layer(x).detach().numpy()
    w = layer.synapse.weight.detach().numpy()
    current = x.numpy() @ w.T
    mem = np.zeros((2, 4))
    expected = []
    for t in range(6):   # U[t] = beta U[t-1] + I[t] - S[t-1] * thr;  S[t] = U[t] > thr
        reset = (mem > 1.0).astype(float)
        mem = 0.8 * mem + current[t] - reset * 1.0
        expected.append((mem > 1.0).astype(float))
    np.testing.assert_array_equal(spikes, np.array(expected))


def test_presynaptic_records():
    net = build_mlp(12, [8, 6], 3, n_heads=2)
    x, heads = torch.rand(5, 4, 12), torch.tensor([0, 1, 0, 1])
    with net.recording() as before:
        pass
    with pytest.raises(SpikeCLError, match="no presynaptic activity of layers.0 was recorded"):
        before.of("layers.0")
    with net.recording() as activity:
        net(x, heads)
    shapes = [tuple(activity.of(name).shape) for name in net.plastic_layers()]
    assert list(net.plastic_layers()) == ["layers.0", "layers.1", "readout"] == list(activity)
    assert len(before) == 0 and "readout" in activity and "layers.2" not in activity and len(activity) == 3
    assert shapes == [(5, 4, 12), (5, 4, 8), (5, 4, 6)]
    assert torch.equal(activity.of("layers.0"), x)
    with net.recording() as online:
        list(net.online_steps(x, heads))
    # online steps record the same per-step inputs (the spikes that drive the neurons, not the traces the weight
    # gradient uses), so a subspace learned from them protects every step's response
    assert torch.equal(online.of("layers.0"), x)
    assert torch.equal(online.of("readout"), activity.of("readout"))


def test_recordings_nest_and_keep_their_own_passes():
    """An inner recording sees only its own passes; closing it leaves the outer one recording; a closed recording
    keeps its data and takes no more."""
    net = build_mlp(12, [8], 3)
    a, b, c = (torch.rand(2, 3, 12) for _ in range(3))
    with net.recording() as outer:
        net(a)
        with net.recording() as inner:
            net(b)
        net(c)
    net(a)
    assert torch.equal(inner.of("layers.0"), b)
    assert torch.equal(outer.of("layers.0"), c)                  # the latest pass while it was open
    assert all(not layer._recordings for layer in net.plastic_layers().values())
    gathered = outer.map(lambda t: t[:, :1])
    assert gathered.of("readout").shape == (2, 1, 8) and outer.of("readout").shape == (2, 3, 8)


def test_a_recording_keeps_the_latest_online_pass_of_each_layer():
    """Online passes record step by step; a recording spanning two passes keeps the latest, as for forward passes
    ([T, B, ...] of the second input, not the two passes' 2T steps one after the other)."""
    net = build_mlp(12, [8], 3)
    first, second = torch.rand(4, 2, 12), torch.rand(4, 2, 12)
    with net.recording() as online:
        list(net.online_steps(first))
        list(net.online_steps(second))
    assert torch.equal(online.of("layers.0"), second) and online.of("readout").shape == (4, 2, 8)


def test_trace_synapse_gradient_is_error_times_trace():
    lin = torch.nn.Linear(3, 2, bias=False)
    x, trace = torch.rand(4, 3, requires_grad=True), torch.rand(4, 3)
    out = trace_synapse(lin, x, trace)
    torch.testing.assert_close(out, lin(x))
    delta = torch.rand(4, 2)
    out.backward(delta)
    torch.testing.assert_close(lin.weight.grad, delta.T @ trace)
    torch.testing.assert_close(x.grad, delta @ lin.weight)


@pytest.mark.parametrize("engine", ["fused", "snntorch"])
def test_online_weight_gradients_follow_a_presynaptic_trace_decaying_by_the_neurons_beta(engine):
    """online_steps gives each synapse's weight gradient the trace a[t] = beta · a[t-1] + x[t] of its input, beta the
    neurons' decay: for a constant input of ones and beta = 0.8 the readout's gradient at step 3 is 1 + 0.8 + 0.64."""
    net = build_mlp(4, [], 2, LIFParams(beta=0.8), engine=engine)
    *_, last = net.online_steps(torch.ones(3, 1, 4))
    last.sum().backward()
    torch.testing.assert_close(net.readout.heads[0].weight.grad, torch.full((2, 4), 2.44))


def test_online_equals_bptt_for_one_step():
    """With T = 1 there is no temporal credit assignment: both trainers compute the same gradient."""
    grads = []
    for name in ("bptt", "online"):
        torch.manual_seed(1)
        net = build_mlp(10, [16], 4)
        x, y = torch.rand(8, 10), torch.randint(0, 4, (8,))
        make_trainer(name, net, 1).task_loss_backward(encode(x, 1), y, None, None)
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_rate_coded_layer_spikes_as_usual_with_rate_gradients():
    """DSR-style gradients: same spikes; dL/dW = (sum_t g_t / (T·thr) where 0 < mean current < thr) ⊗ sum_t x_t."""
    torch.manual_seed(0)
    layer = SpikingLinear(6, 5, LIFParams(threshold=1.0))
    x = (torch.rand(4, 3, 6) < 0.5).float()
    plain = layer(x)
    out = layer(x, rate_gradient=True)
    torch.testing.assert_close(out, plain)
    g = torch.randn_like(out)
    out.backward(g)
    mean_current = x.mean(0) @ layer.synapse.weight.T                     # [B, out]
    inside = ((mean_current > 0) & (mean_current < 1.0)).float()
    assert 0 < inside.mean() < 1                                          # both regimes are exercised
    delta = g.sum(0) / 4 * inside
    torch.testing.assert_close(layer.synapse.weight.grad, delta.T @ x.sum(0))
    silent = x.clone().requires_grad_()                         # a sample with no input spike: mean current 0
    with torch.no_grad():
        silent[:, 0] = 0
    layer(silent, rate_gradient=True).backward(g)
    assert silent.grad[:, 0].abs().max() == 0                   # 0 is outside (0, threshold): no gradient
    current = torch.tensor([[0.0, 0.5, -0.2, 1.0, 1.5]], requires_grad=True)
    rate_coded(torch.zeros(1, 5), current, 1.0).sum().backward()
    assert current.grad.tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0]]  # only strictly inside: not at 0 or the threshold


def test_rate_trainer_reaches_every_conv_weight():
    torch.manual_seed(0)
    net = build_cnn((3, 8, 8), [4, 8], 5)
    make_trainer("dsr", net, 3).task_loss_backward(encode(torch.rand(6, 3, 8, 8), 3), torch.randint(0, 5, (6,)),
                                                    None, None)
    for name, p in net.named_parameters():
        if p.requires_grad and name.endswith("weight"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_multi_head_selects_per_sample():
    torch.manual_seed(0)
    net = build_mlp(6, [5], 3, n_heads=2)
    x = torch.rand(4, 2, 6)
    mixed = net(x, torch.tensor([0, 1]))
    only0, only1 = net(x, torch.tensor([0, 0])), net(x, torch.tensor([1, 1]))
    torch.testing.assert_close(mixed[0], only0[0])
    torch.testing.assert_close(mixed[1], only1[1])
    assert not torch.allclose(only0[1], only1[1])


def test_cnn_shapes_and_bad_input():
    net = build_cnn((3, 16, 16), [4, 8], 5)
    assert net(torch.rand(2, 3, 3, 16, 16)).shape == (3, 5)
    with net.recording() as activity:
        net(torch.rand(2, 3, 3, 16, 16))
    assert activity.of("layers.1").shape == (2, 3, 4, 8, 8)
    assert sum(1 for _ in net.online_steps(torch.rand(2, 3, 3, 16, 16))) == 2
    with pytest.raises(ShapeError, match="features per sample"):
        build_mlp(784, [10], 10)(torch.rand(2, 3, 1, 8, 8))
    with pytest.raises(ConfigError, match="shrink"):
        build_cnn((1, 4, 4), [2, 2, 2], 3)


def test_a_cnn_takes_inputs_that_are_not_square():
    """The readout takes C · (H / 2^L) · (W / 2^L) features: a 12 x 16 input through two pooled layers of 8 channels
    gives 8 · 3 · 4 = 96, and a forward and an online pass run."""
    net = build_cnn((3, 12, 16), [4, 8], 5)
    assert net.readout.heads[0].in_features == 96
    assert net(torch.rand(2, 3, 3, 12, 16)).shape == (3, 5)
    assert [m.shape for m in net.online_steps(torch.rand(2, 3, 3, 12, 16))] == [(3, 5), (3, 5)]


@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr"])
def test_training_on_digits_beats_chance(trainer, digits):
    torch.manual_seed(0)
    net = build_mlp(64, [64], 10)
    tr = make_trainer(trainer, net, 4)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x, y, xt, yt = (torch.as_tensor(a) for a in digits)
    x, xt = x.flatten(1), xt.flatten(1)
    for epoch in range(3):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(x), 32):
            tr.train_batch(x[order[i:i + 32]], y[order[i:i + 32]], None, None, opt)
    assert evaluate(net, xt, yt, 4) > 0.75     # chance is 0.10


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_forward_and_step():
    net = build_mlp(64, [32], 10).cuda()
    tr = make_trainer("online", net, 4)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.rand(16, 64, device="cuda"), torch.randint(0, 10, (16,), device="cuda")
    before = [p.detach().clone() for p in net.parameters()]
    tr.train_batch(x, y, None, None, opt, generator=torch.Generator("cuda").manual_seed(0))
    assert all(p.is_cuda and p.isfinite().all() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))      # the step moved the weights
    assert 0.0 <= evaluate(net, x, y, 4) <= 1.0


def test_a_non_finite_loss_is_read_every_few_steps_without_waiting_for_the_device():
    """The finite-loss flag stays on the device and is read every ``read_every`` steps (every step on the CPU by
    default): a NaN at the first of three steps raises at the third, and training returns losses as tensors."""
    from spikecl.errors import NumericalError

    torch.manual_seed(0)
    net = build_mlp(6, [8], 3)
    trainer = make_trainer("bptt", net, 2)
    trainer.read_every = 3
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    trainer.train_batch(x, y, None, None, opt)                  # a NaN loss, not read yet
    net.load_state_dict(state)
    loss = trainer.train_batch(x, y, None, None, opt)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0
    with pytest.raises(NumericalError, match="NaN or infinite"):
        trainer.train_batch(x, y, None, None, opt)
    trainer.read_every = None                      # the CPU default reads every step: the next NaN raises at once
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    with pytest.raises(NumericalError):
        trainer.train_batch(x, y, None, None, opt)
