"""Bad input to the torch side, streams and metrics: one-line spikecl errors, never raw tracebacks or wrong answers."""

import re

import numpy as np
import pytest
import torch

from spikecl.config import TrainConfig
from spikecl.continual import metrics
from spikecl.data.datasets import load_dataset
from spikecl.data.streams import make_stream, rotate
from spikecl.errors import ConfigError, DataError, NumericalError, ShapeError
from spikecl.options import from_dict
from spikecl.snn import LIFParams, build_cnn, build_mlp, encode, evaluate, make_trainer
from spikecl.snn.trainers import TrainingHooks


@pytest.fixture
def net():
    torch.manual_seed(0)
    return build_mlp(20, [16], 5)


def batch(n=8):
    return torch.rand(n, 20), torch.randint(0, 5, (n,))


# 1
@pytest.mark.parametrize("trainer", ["bptt", "online"])
def test_nan_input_is_refused_and_weights_stay_finite(net, trainer):
    x, y = batch()
    x[0, 3] = float("nan")
    tr, opt = make_trainer(trainer, net, 4), torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises((NumericalError, DataError), match="NaN"):
        tr.train_batch(x, y, None, None, opt)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    with pytest.raises((NumericalError, DataError), match="NaN"):
        evaluate(net, x, y, 4)
    with pytest.raises(NumericalError):
        net(encode(x, 4))


def test_nan_encoded_input_is_refused_by_the_trainer(net):
    x, y = batch()
    x[1, 0] = float("inf")
    tr, opt = make_trainer("bptt", net, 4), torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises((NumericalError, DataError)):
        tr.train_encoded(x.unsqueeze(0).expand(4, *x.shape), y, None, None, opt)


# 2
@pytest.mark.parametrize("steps", [-1, 0, True, 2.5])
def test_num_steps_must_be_a_positive_integer(net, steps):
    x, y = batch()
    with pytest.raises(ConfigError, match="num_steps"):
        encode(x, steps)
    with pytest.raises(ConfigError, match="num_steps"):
        make_trainer("bptt", net, steps)
    with pytest.raises(ConfigError, match="num_steps"):
        evaluate(net, x, y, steps)
    assert encode(x, np.int64(3)).shape[0] == 3


# 3
def test_evaluate_checks_labels(net):
    x, y = batch(10)
    from spikecl.snn.trainers import predict

    with pytest.raises(ShapeError, match=r"evaluation input of shape \(20,\) has no sample axis"):
        predict(net, x[0], 4)                           # one sample without its axis
    for bad in (y[:, None], y[:1], y[:9], y.float()):
        with pytest.raises(ShapeError, match="labels"):
            evaluate(net, x, bad, 4)
    with pytest.raises(DataError, match="labels"):
        evaluate(net, x, y + 10, 4)


def test_a_label_equal_to_the_class_count_and_boolean_labels_are_refused(net):
    """Labels run 0..n-1: a label of n (one past) is a DataError naming it, in evaluation and training (not an
    accuracy computed in silence), and bool labels are a ShapeError (not read as classes 0 and 1)."""
    x, y = batch()
    at_n = y.clone()
    at_n[3] = 5
    with pytest.raises(DataError, match=r"labels: 5 is outside 0\.\.4$"):
        evaluate(net, x, at_n, 4)
    with pytest.raises(ShapeError, match=r"labels has dtype torch\.bool; expected integer indices$"):
        evaluate(net, x, y > 2, 4)
    tr, opt = make_trainer("bptt", net, 4), torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(DataError, match=r"5 is outside 0\.\.4"):
        tr.train_batch(x, at_n, None, None, opt)


def test_complex_inputs_are_refused_by_every_encoder():
    """A complex tensor is a one-line ShapeError from every encoder, not passed on to the network."""
    for kind in ("direct", "poisson", "latency", "events"):
        with pytest.raises(ShapeError, match=r"has dtype torch\.complex64; expected a real floating-point tensor$"):
            encode(torch.ones(2, 3, 4, dtype=torch.complex64), 2, kind)


def test_a_nan_batch_norm_statistic_is_named_before_evaluation():
    """A NaN in a buffer (batch norm's running variance), not only in a weight, stops evaluation naming it (it
    evaluated to an accuracy of 0.75 otherwise)."""
    torch.manual_seed(0)
    cnn = build_cnn((1, 4, 4), [2], 3)
    with torch.no_grad():
        cnn.layers[0].norm.running_var[1] = float("nan")
    with pytest.raises(NumericalError, match=r"^network parameter layers\.0\.norm\.running_var is NaN or infinite"):
        evaluate(cnn, torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), 2)


@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr"])
def test_train_batch_checks_labels_and_empty_batches(net, trainer):
    x, y = batch()
    tr, opt = make_trainer(trainer, net, 4), torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(DataError, match="labels"):
        tr.train_batch(x, y + 10, None, None, opt)
    with pytest.raises(ShapeError, match="labels"):
        tr.train_batch(x, y[:4], None, None, opt)
    with pytest.raises(ShapeError, match="labels"):
        tr.train_batch(x, y.float(), None, None, opt)
    with pytest.raises(ShapeError, match="empty"):
        tr.train_batch(x[:0], y[:0], None, None, opt)
    assert torch.isfinite(tr.train_batch(x, y.int(), None, None, opt))


@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr"])
def test_an_optimizer_of_another_network_is_refused_not_stepped_in_vain(net, trainer):
    """A notebook that builds the network anew but not its optimizer: the steps would move the old network's
    tensors and nothing would learn."""
    x, y = batch()
    stale = torch.optim.SGD(build_mlp(20, [16], 5).parameters(), lr=0.1)
    tr = make_trainer(trainer, net, 4)
    for optimizer, message in ((stale, "holds none of this network's trainable parameters"),
                               (None, "expected a torch.optim.Optimizer over the network's parameters, got NoneType")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            tr.train_batch(x, y, None, None, optimizer)
    before = [p.detach().clone() for p in net.parameters()]
    tr.train_batch(x, y, None, None, torch.optim.SGD(net.parameters(), lr=0.1))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


# 4
def test_stream_settings_and_rotation():
    ds = load_dataset("digits")
    for kwargs in ({"max_angle_deg": float("nan")}, {"max_angle_deg": float("inf")}, {"train_per_task": -5},
                   {"seed": -1}):
        with pytest.raises(ConfigError):
            make_stream(ds, "rotated", 2, "domain", **kwargs)
    for n_tasks in (2.0, True):
        with pytest.raises(ConfigError, match="n_tasks"):
            make_stream(ds, "permuted", n_tasks, "domain")
    with pytest.raises(ConfigError, match="make_stream: dataset: expected a Dataset, got str; load_dataset"):
        make_stream("digits", "split", 5, "task")
    for identity in ("no", "false", 0):               # a truthy string would leave task 1 unpermuted
        with pytest.raises(ConfigError, match="stream.first_task_identity: expected true or false"):
            make_stream(ds, "permuted", 2, "domain", first_task_identity=identity)
    with pytest.raises(ConfigError, match="classes_per_task"):
        make_stream(ds, "split", 2, "task", classes_per_task=True)
    assert len(make_stream(ds, "permuted", np.int64(2), "domain")) == 2
    images = (np.random.default_rng(0).random((2, 1, 8, 8)) * 255).astype(np.uint8)
    turned = rotate(images, 90.0)
    assert turned.dtype == np.uint8 and np.array_equal(turned, np.rot90(images, axes=(-2, -1)))


# 5
def test_metrics_refuse_percentages_ragged_input_and_fractional_windows():
    with pytest.raises(DataError, match="10.0"):
        metrics.acc([[10.0], [90.0]])
    with pytest.raises(ShapeError):
        metrics.acc([[0.1, 0.2], [0.3]])
    with pytest.raises(ShapeError):
        metrics.acc([["a"], ["b"]])
    with pytest.raises(ConfigError, match="window"):
        metrics.windowed_forgetting([[0.5, 0.1], [0.4, 0.6]], [0, 1], window=2.5)


# 6
@pytest.mark.parametrize("kwargs", [{"beta": 5.0}, {"threshold": -0.5}, {"threshold": float("nan")},
                                    {"reset": "none"}, {"reset": "bogus"}])
def test_lif_params_are_validated(kwargs):
    with pytest.raises(ConfigError, match="network."):
        LIFParams(**kwargs)


# 7
def test_heads_are_checked():
    torch.manual_seed(0)
    mh = build_mlp(20, [16], 5, n_heads=3)
    x, y = batch(10)
    with pytest.raises(DataError, match="heads"):
        evaluate(mh, x, y, 4, heads=torch.full((10,), -1))
    with pytest.raises(DataError, match="heads"):
        evaluate(mh, x, y, 4, heads=torch.full((10,), 7))
    with pytest.raises(ShapeError, match="heads"):
        evaluate(mh, x, y, 4, heads=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ShapeError, match="heads"):
        evaluate(mh, x, y, 4, heads=torch.zeros(10))
    with pytest.raises(ConfigError, match="heads"):
        evaluate(mh, x, y, 4)


# 8
@pytest.mark.parametrize("build", [lambda: build_mlp(20, [0], 5), lambda: build_mlp(0, [3], 5),
                                   lambda: build_mlp(4, [3], 0), lambda: build_mlp(4, [3], 2, n_heads=0),
                                   lambda: build_mlp(20, [-3], 5), lambda: build_mlp(4, [3], True),
                                   lambda: build_mlp(4, [3.0], 2), lambda: build_cnn((8, 8), [4], 2),
                                   lambda: build_mlp(4, [3], 2, engine="foo")])
def test_builders_refuse_bad_sizes(build):
    with pytest.raises(ConfigError):
        build()


def test_builders_accept_numpy_integers():
    assert build_mlp(np.int64(4), [np.int32(3)], np.int64(2)).readout.heads[0].out_features == 2


# 9
def test_config_accepts_numpy_integers():
    assert from_dict(TrainConfig, {"epochs": np.int64(2)}).epochs == 2
    with pytest.raises(ConfigError):
        from_dict(TrainConfig, {"epochs": np.bool_(True)})


# 10
def test_common_input_mistakes(net):
    x, y = batch()
    assert net(encode(torch.as_tensor(x.numpy().astype(np.float64)), 4)).shape == (8, 5)
    assert net(encode(x.numpy(), 3)).shape == (8, 5)
    with pytest.raises(ShapeError, match=r"\[T, B"):
        net(torch.rand(2, 20))
    for size in (0, -1):
        with pytest.raises(ConfigError, match="batch_size"):
            evaluate(net, x, y, 4, batch_size=size)


@pytest.mark.parametrize("shape", [(0, 8, 20), (4, 0, 20)], ids=["no time step", "no sample"])
def test_an_input_without_time_steps_or_samples_is_named_not_run(net, shape):
    """An input [T, B, ...] with T = 0 or B = 0 is a one-line ShapeError in forward and online_steps: without the
    check, T = 0 was an IndexError in forward and an empty online pass, B = 0 empty logits returned as a result."""
    for run in (net, lambda x: list(net.online_steps(x))):
        with pytest.raises(ShapeError, match=re.escape(f"network input has shape {shape}; expected [T, B, *(20,)], "
                                                       "T and B >= 1")):
            run(torch.zeros(shape))


@pytest.mark.parametrize("trainer", ["bptt", "online"])
def test_output_masks_are_checked(net, trainer):
    x, y = batch()
    tr, opt = make_trainer(trainer, net, 4), torch.optim.SGD(net.parameters(), lr=0.1)
    for bad, error, words in ((torch.ones(5), ShapeError, "dtype"), (torch.ones(4, dtype=torch.bool), ShapeError,
                              "shape"), (torch.zeros(5, dtype=torch.bool), DataError, "no readout output")):
        with pytest.raises(error, match=words):
            tr.train_batch(x, y, None, bad, opt)
        with pytest.raises(error, match=words):
            evaluate(net, x, y, 4, mask=bad)
    mask = np.array([True, True, False, False, False])          # numpy masks are accepted
    assert 0.0 <= evaluate(net, x, y % 2, 4, mask=mask) <= 1.0
    assert torch.isfinite(tr.train_batch(x, y % 2, None, mask, opt))
    inactive = torch.where(torch.arange(len(y)) == 0, torch.tensor(3), y % 2)
    with pytest.raises(DataError, match="labels: 3 is an output the mask leaves inactive \\(active: 0, 1\\)"):
        tr.train_batch(x, inactive, None, mask, opt)              # it could never be learned
    assert 0.0 <= evaluate(net, x, inactive, 4, mask=mask) <= 1.0   # a later task's class: a miss, as in class-IL


def test_simulation_settings_are_checked_when_made():
    from spikecl.continual.strategy import Simulation
    assert Simulation(np.int64(3)).num_steps == 3
    for kwargs, key in ((dict(num_steps=0), "num_steps"), (dict(num_steps=True), "num_steps"),
                        (dict(encoder="rate"), "network.encoder"), (dict(trainer="sgd"), "train.trainer")):
        with pytest.raises(ConfigError, match=key):
            Simulation(**kwargs)


def test_evaluation_leaves_the_networks_mode_and_normalisation_statistics_as_they_were():
    """``evaluate`` and NeuroBench's ``workload`` read the network in eval mode and hand it back in the mode it came
    in: a CNN in training mode keeps updating its batch-norm statistics in the caller's next training pass."""
    from spikecl.snn.measures import workload

    torch.manual_seed(0)
    cnn = build_cnn((1, 8, 8), [4], 3)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 3, (6,))
    for read in (lambda: evaluate(cnn, x, y, 2), lambda: workload(cnn, x, 2)):
        cnn.train()
        norms = [m for m in cnn.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        stats = [m.running_mean.clone() for m in norms]
        read()
        assert norms and cnn.training and all(torch.equal(a, m.running_mean) for a, m in zip(stats, norms))
        cnn.eval()
        read()
        assert not cnn.training


def test_a_poisson_evaluation_does_not_depend_on_its_batch_size():
    """``train.eval_batch_size`` is memory only: Poisson spikes are drawn sample by sample, so chunks of any size
    drawn from one generator are the spikes of the whole batch (accuracies differed with the chunking)."""
    torch.manual_seed(0)
    net = build_mlp(16, [32], 4)
    x, y = torch.rand(37, 16), torch.randint(0, 4, (37,))
    whole = encode(x, 5, "poisson", torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(whole, torch.cat([encode(x[:10], 5, "poisson", g), encode(x[10:], 5, "poisson", g)], dim=1))
    accuracies = {evaluate(net, x, y, 5, "poisson", batch_size=size, generator=torch.Generator().manual_seed(2))
                  for size in (1, 7, 500)}
    assert len(accuracies) == 1


@pytest.mark.parametrize("gain", [float("nan"), float("inf"), -1.0, "3", True])
def test_a_weight_gain_that_is_not_a_finite_number_is_refused(gain):
    with pytest.raises(ConfigError, match="^init_gain: expected a finite number >= 0"):
        build_mlp(4, [8], 2, init_gain=gain)
    with pytest.raises(ConfigError, match="^init_gain: expected a finite number >= 0"):
        build_cnn((1, 8, 8), [4], 2, init_gain=gain)


def test_a_weight_gain_that_overflows_the_weights_is_refused():
    """A finite gain that takes the initial weights beyond float32 (about 3.4e38) is a one-line ConfigError, not a
    network of infinite weights."""
    assert all(torch.isfinite(p).all() for p in build_mlp(4, [8], 2, init_gain=1e30).parameters())
    for build in (lambda: build_mlp(4, [8], 2, init_gain=1e39), lambda: build_cnn((1, 8, 8), [4], 2, init_gain=1e39)):
        with pytest.raises(ConfigError, match=r"^init_gain: 1e\+39 makes the initial weights overflow float32$"):
            build()


def test_half_precision_inputs_are_taken_and_inputs_without_a_sample_axis_are_named(net):
    """float16/bfloat16 samples become float32 as float64 ones do (the network refused them, pointing at an
    encoder that did not convert them); a 0-d input names itself, not the labels' expected shape [-1]."""
    x, y = batch(5)
    reference = evaluate(net, x.half().float(), y, 2)
    assert evaluate(net, x.half(), y, 2) == reference
    assert evaluate(net, x.bfloat16(), y, 2) == evaluate(net, x.bfloat16().float(), y, 2)
    for bad in (torch.tensor(0.5), torch.rand(20)):                # one number; one sample without its axis
        with pytest.raises(ShapeError, match=rf"^evaluation input of shape \({bad.numel() if bad.dim() else ''},?\) "
                                             r"has no sample axis; expected samples \[N, ...\]"):
            evaluate(net, bad, torch.zeros(1, dtype=torch.long), 2)
    with pytest.raises(ShapeError, match=r"^training batch of shape \(20,\) has no sample axis"):
        make_trainer("bptt", net, 2).train_batch(torch.rand(20), torch.zeros(1, dtype=torch.long), None, None,
                                                 torch.optim.SGD(net.parameters(), lr=0.1))


def test_a_cnn_without_a_convolution_layer_is_refused_in_python_too():
    """From a TOML file and from Python alike: with no conv layer the 'CNN' was a non-spiking linear readout."""
    with pytest.raises(ConfigError, match="^network.channels: a CNN needs at least one convolution layer$"):
        build_cnn((1, 8, 8), [], 3)


def test_the_fused_engine_refuses_a_second_derivative_by_name():
    """Its LIF backward works in place (no graph): create_graph=True then differentiating again is refused with
    autograd's once-differentiable error, never a wrong second derivative; the snnTorch engine gives it."""
    from spikecl.snn import build_mlp, encode

    torch.manual_seed(0)
    for engine, works in (("fused", False), ("snntorch", True)):
        net = build_mlp(6, [5, 4], 3, engine=engine)
        loss = net(encode(torch.rand(4, 6), 3)).pow(2).sum()
        grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads)
        if works:
            penalty.backward()
        else:
            with pytest.raises(RuntimeError, match="differentiate twice a function that was marked with "
                                                   "@once_differentiable"):
                penalty.backward()


@pytest.mark.parametrize("engine", ["fused", "snntorch"])
@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr"])
def test_a_head_no_sample_of_the_batch_reads_takes_no_part_in_it(engine, trainer):
    """Heads a batch does not name keep ``grad = None``, so Adam's weight decay leaves them exactly as they were,
    while the heads it reads learn; each sample's logits are those of its own head."""
    torch.manual_seed(0)
    net = build_mlp(16, [8], 2, n_heads=3, engine=engine)
    before = [head.weight.detach().clone() for head in net.readout.heads]
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-4)
    x, y, heads = torch.rand(4, 16), torch.tensor([0, 1, 0, 1]), torch.tensor([2, 2, 0, 2])
    for _ in range(3):
        make_trainer(trainer, net, 3).train_batch(x, y, heads, None, optimizer)
    assert net.readout.heads[1].weight.grad is None and torch.equal(net.readout.heads[1].weight, before[1])
    assert all((net.readout.heads[h].weight != before[h]).any() for h in (0, 2))
    with torch.no_grad():
        mixed = net(encode(x, 3), heads)
        alone = torch.stack([net(encode(x[i:i + 1], 3), heads[i:i + 1])[0] for i in range(4)])
    torch.testing.assert_close(mixed, alone)


def test_a_penalty_at_its_anchor_leaves_unused_heads_without_gradient_and_a_pull_away_from_it_stays():
    """EWC-like penalty (θ − θ*)² over every parameter: heads the batch does not name sit at their anchor, so the
    penalty's gradient there is zero and is dropped (no optimiser state is made for it); a head moved off its anchor
    takes the penalty's step, lr · 2 (θ − θ*)."""
    torch.manual_seed(0)
    net = build_mlp(16, [8], 2, n_heads=3)
    anchor = [p.detach().clone() for p in net.parameters()]

    class Penalty(TrainingHooks):
        def penalty(self):
            return sum(((p - a) ** 2).sum() for p, a in zip(net.parameters(), anchor))

    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=0.0)
    x, y, heads = torch.rand(4, 16), torch.tensor([0, 1, 0, 1]), torch.tensor([2, 2, 2, 2])
    with torch.no_grad():
        net.readout.heads[1].weight.add_(0.5)                      # head 1 off its anchor, head 0 on it
    before = [head.weight.detach().clone() for head in net.readout.heads]
    make_trainer("bptt", net, 3).train_batch(x, y, heads, None, optimizer, Penalty())
    assert net.readout.heads[0].weight.grad is None and torch.equal(net.readout.heads[0].weight, before[0])
    torch.testing.assert_close(net.readout.heads[1].weight, before[1] - 0.1 * 2 * 0.5)   # the penalty's step


@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr"])
def test_an_encoded_batch_of_another_length_or_without_time_is_refused(trainer):
    """``train_encoded`` takes [T, B, ...] with the trainer's own T (the online loss is a mean over num_steps): a
    sequence of another length, or a batch never encoded, is a one-line ShapeError naming it."""
    net = build_mlp(16, [8], 3)
    tr = make_trainer(trainer, net, 3)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.rand(2, 16), torch.tensor([0, 1])
    with pytest.raises(ShapeError, match="encoded batch has T = 6 time steps; this trainer was made for num_steps = 3"):
        tr.train_encoded(encode(x, 6), y, None, None, optimizer)
    with pytest.raises(ShapeError, match=r"encoded batch of shape \(2, 16\) is not \[T, B, \.\.\.\]"):
        tr.train_encoded(x, y, None, None, optimizer)
    assert torch.isfinite(tr.train_encoded(encode(x, 3), y, None, None, optimizer))


@pytest.mark.parametrize("engine", ["fused", "snntorch"])
def test_a_network_called_on_nan_or_infinity_says_so(engine):
    """NaN never crosses a threshold, so a network would answer it with silent zeros: its forward pass and online
    steps refuse non-finite input (a static input's one copy is checked) with a NumericalError."""
    net = build_mlp(16, [8], 3, engine=engine)
    for bad in (float("nan"), float("inf")):
        x = torch.rand(2, 16)
        x[1, 3] = bad
        for call in (lambda: net(x.expand(3, 2, 16)),
                     lambda: next(net.online_steps(x.expand(3, 2, 16).clone()))):
            with pytest.raises(NumericalError, match="network input contains NaN or infinity"):
                call()


@pytest.mark.parametrize("engine", ["fused", "snntorch"])
def test_an_input_varying_over_time_is_checked_for_nan_at_every_step(engine):
    """An input that changes over time (Poisson spikes, a recorded stream) is checked at every step, not only at its
    first: a NaN or infinity at the last step is a NumericalError from forward and online_steps, not a silent step."""
    net = build_mlp(16, [8], 3, engine=engine)
    for bad in (float("nan"), float("inf")):
        x = torch.rand(3, 2, 16)
        assert net(x).shape == (2, 3)
        x[2, 1, 3] = bad
        for call in (lambda: net(x), lambda: list(net.online_steps(x))):
            with pytest.raises(NumericalError, match="network input contains NaN or infinity"):
                call()


def test_a_masked_output_is_never_predicted_however_low_the_active_logits():
    """Inactive outputs are masked to minus infinity: with active logits far below any finite floor (beta = 1, long
    T, strongly negative weights) the prediction is still an active output."""
    from spikecl.snn.trainers import predict

    torch.manual_seed(0)
    net = build_mlp(4, [8], 3, LIFParams(beta=1.0), init_gain=10.0)
    with torch.no_grad():
        net.readout.heads[0].weight.fill_(-100.0)
        net.readout.heads[0].weight[1] -= 1.0                         # output 0 is the best active one
    x = torch.ones(2, 4)
    assert net(encode(x, 100)).max() < -1e4
    assert predict(net, x, 100, mask=torch.tensor([True, True, False])).tolist() == [0, 0]


@pytest.mark.parametrize("built, saved, key", [
    (LIFParams(beta=0.9), LIFParams(beta=0.5),
     r"lif\.beta: the state dict holds 0\.5, this network was built with 0\.9"),
    (LIFParams(reset="zero"), LIFParams(), r"reset_mechanism_val: the state dict holds subtract, .* built with zero"),
    (LIFParams(threshold=2.0), LIFParams(), r"lif\.threshold: the state dict holds 1, .* built with 2")])
def test_a_state_dict_of_other_neuron_settings_is_refused_by_name(built, saved, key):
    """Loaded alone, the neurons' beta would drive the LIF while the online traces kept the built one."""
    net = build_mlp(6, [8], 3, built)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ConfigError, match=key):
        net.load_state_dict(build_mlp(6, [8], 3, saved).state_dict())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items() if "lif" in k)
    same = build_mlp(6, [8], 3, built)
    same.load_state_dict(net.state_dict())                          # the same settings load as before
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), net.state_dict().values()))


@pytest.mark.parametrize("key", ["layers.0.lif.graded_spikes_factor", "readout.integrator.graded_spikes_factor"])
def test_a_state_dict_of_graded_spikes_is_refused(key):
    """Only the snnTorch engine would scale spikes by it (its logits twice the fused engine's at 2)."""
    net = build_mlp(6, [8], 3)
    saved = net.state_dict()
    saved[key] = torch.tensor(2.0)
    with pytest.raises(ConfigError, match=f"{key}: the state dict holds 2, this network was built with 1; spikecl's "
                                          "neurons send spikes of 1"):
        net.load_state_dict(saved)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("engine", ["fused", "snntorch"])
def test_a_network_cast_to_half_precision_is_refused_in_one_line(dtype, engine):
    """Its membranes would be float32 against half-precision weights; bfloat16 training is train.precision's."""
    net = build_mlp(6, [5], 3, engine=engine).to(dtype)
    with pytest.raises(ShapeError, match=f"network weights are {dtype}: spikecl's networks run in float32 or "
                                         "float64"):
        net(torch.rand(3, 2, 6, dtype=dtype))


@pytest.mark.parametrize("where", ["layers.0.synapse.weight", "readout.heads.0.weight"])
@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr"])
def test_nan_weights_are_named_by_evaluation_and_training(net, where, trainer):
    """NaN weights silence every spike: the accuracy would be the share of one class and the loss a finite ln 5."""
    with torch.no_grad():
        net.get_parameter(where).fill_(float("nan"))
    x, y = batch()
    with pytest.raises(NumericalError, match=f"network parameter {where} is NaN or infinite"):
        evaluate(net, x, y, 4)
    tr, opt = make_trainer(trainer, net, 4), torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(NumericalError, match=f"network parameter {where} is NaN or infinite"):
        tr.train_batch(x, y, None, None, opt)


def test_a_nan_batch_read_late_is_named_as_bad_data_though_its_step_left_nan_weights(net):
    """On an accelerator the flags are read every CHECK_EVERY steps, after the NaN step's update."""
    tr = make_trainer("bptt", net, 4)
    tr.read_every = 50
    tr.check_finite(torch.tensor(float("nan")), torch.tensor(False))
    with torch.no_grad():
        net.layers[0].synapse.weight.fill_(float("nan"))
    with pytest.raises(DataError, match="a training batch had NaN or infinite inputs"):
        tr.flush_checks()


def test_learnable_beta_or_threshold_is_refused_by_the_fused_engine_and_learns_on_snntorch():
    import snntorch as snn
    from snntorch import surrogate
    torch.manual_seed(0)
    net = build_mlp(6, [5], 3)
    net.layers[0].lif = snn.Leaky(beta=0.9, threshold=1.0, learn_beta=True, learn_threshold=True,
                                  spike_grad=surrogate.fast_sigmoid(slope=25.0))
    x = encode(torch.rand(4, 6) * 3, 5)
    with pytest.raises(ConfigError, match="learnable ones .* 'snntorch' engine"):
        net(x)
    net.engine = "snntorch"
    net(x).sum().backward()
    assert net.layers[0].lif.beta.grad is not None and net.layers[0].lif.beta.grad != 0
    with torch.no_grad():
        net.layers[0].lif.beta.add_(0.05)                       # learned: its state dict loads into its twin
    twin = build_mlp(6, [5], 3, engine="snntorch")
    twin.layers[0].lif = snn.Leaky(beta=0.9, threshold=1.0, learn_beta=True, learn_threshold=True,
                                   spike_grad=surrogate.fast_sigmoid(slope=25.0))
    twin.load_state_dict(net.state_dict())
    assert twin.layers[0].lif.beta.item() == pytest.approx(0.95)


@pytest.mark.parametrize("kind", ["direct", "poisson", "latency"])
def test_raw_8_bit_images_are_refused_by_every_static_encoder_trainer_and_evaluation(kind):
    raw = torch.tensor([[0, 3, 128, 255]], dtype=torch.uint8)
    for x in (raw, raw.numpy(), raw.tolist(), raw.numpy().astype(np.uint16), raw.to(torch.uint32)):
        with pytest.raises(DataError, match=r"integer values up to 255, .*\(x / 255"):
            encode(x, 4, kind, torch.Generator().manual_seed(0))
    net, y = build_mlp(4, [5], 3), torch.zeros(1, dtype=torch.long)
    with pytest.raises(DataError, match=r"evaluation input: integer values up to 255"):
        evaluate(net, raw, y, 4, kind, generator=torch.Generator().manual_seed(0))
    tr = make_trainer("bptt", net, 4, kind)
    with pytest.raises(DataError, match=r"training batch: integer values up to 255"):
        tr.train_batch(raw, y, None, None, torch.optim.SGD(net.parameters(), lr=0.1),
                       generator=torch.Generator().manual_seed(0))
    for wide in (np.uint16, np.uint32, np.uint64):                      # 0/1 in any integer type are intensities
        assert encode(np.array([[0, 1]], dtype=wide), 2, kind, torch.Generator().manual_seed(0)).shape == (2, 1, 2)
    events = torch.tensor([[[0, 3], [2, 0]]], dtype=torch.int64)        # event counts [B, T, n] may exceed 1
    assert torch.equal(encode(events, 2, "events"), events.transpose(0, 1).float())
    assert torch.equal(encode(torch.tensor([[0, 1]]), 2, kind, torch.Generator().manual_seed(0))[:, 0, 0],
                       torch.zeros(2))                                  # binary integers are intensities already
    assert torch.equal(encode(raw.float() / 255, 4, "latency").argmax(0)[0, 1:], torch.tensor([3, 1, 0]))


def test_evaluating_no_samples_is_refused(net):
    with pytest.raises(ShapeError, match="is empty"):
        evaluate(net, torch.rand(0, 20), torch.zeros(0, dtype=torch.long), 4)


def test_weights_turned_nan_during_training_are_named_within_check_every_steps(net):
    from spikecl.snn.trainers import CHECK_EVERY

    x, y = batch()
    tr, opt = make_trainer("bptt", net, 4), torch.optim.SGD(net.parameters(), lr=0.1)
    tr.train_batch(x, y, None, None, opt)                  # the first read checked the weights: finite
    with torch.no_grad():
        net.layers[0].synapse.weight.fill_(float("nan"))
    with pytest.raises(NumericalError, match="network parameter layers.0.synapse.weight is NaN"):
        for _ in range(CHECK_EVERY):
            tr.train_batch(x, y, None, None, opt)


@pytest.mark.parametrize("make, message", [
    (lambda: __import__("spikecl.snn.layers", fromlist=["SpikingLinear"]).SpikingLinear(-1, 4, LIFParams()),
     "SpikingLinear: n_in"),
    (lambda: __import__("spikecl.snn.layers", fromlist=["Readout"]).Readout(4, 2, LIFParams(), n_heads=0),
     "Readout: n_heads"),
    (lambda: __import__("spikecl.memory.params", fromlist=["population_sizes"]).population_sizes(-1, 10),
     "n_cues: expected a positive integer, got -1"),
    (lambda: __import__("spikecl.data.base", fromlist=["Dataset"]).Dataset(
        "d", np.zeros((2, 1, 2, 2), np.float32), np.zeros(2, np.int64), np.zeros((2, 1, 2, 2), np.float32),
        np.zeros(2, np.int64), n_classes=10.0), "d: n_classes must be a whole number >= 1, got 10.0"),
    (lambda: __import__("spikecl.data.base", fromlist=["Dataset"]).Dataset(
        "d", [[0.0]], [0], [[0.0]], [0], n_classes=2), "d: x_train and y_train must be numpy arrays, got list"),
    (lambda: __import__("spikecl.continual.report", fromlist=["format_matrix"]).format_matrix(np.ones((2, 3))),
     "accuracy matrix has shape (2, 3); expected [T+1, T]"),
])
def test_public_constructors_check_their_sizes(make, message):
    """Negative or fractional sizes built a layer torch refused deep inside, a readout with no heads, negative
    populations, a dataset of 10.0 classes, or printed a transposed accuracy matrix."""
    from spikecl.errors import SpikeCLError

    with pytest.raises(SpikeCLError, match=re.escape(message)):
        make()


def _leaky_spikes(current, beta, threshold, reset):
    import snntorch as snn
    from snntorch import surrogate

    lif = snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, spike_grad=surrogate.fast_sigmoid(slope=5.0))
    mem, out = torch.zeros_like(current[0]), []
    for cur in current:
        spk, mem = lif(cur, mem)
        out.append(spk)
    return torch.stack(out)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_a_membrane_exactly_at_threshold_does_not_fire_as_in_snntorch(reset):
    """S = Heaviside(U - thr) fires only above the threshold (snnTorch: ``U - thr > 0``). Binary inputs (fly-hash
    codes, event counts) through unit weights hit U == thr exactly; the fused engine and its online step must then
    agree with snnTorch bit for bit."""
    from spikecl.snn.fused import lif_sequence, lif_step

    current = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.5]).view(5, 1, 1)
    beta, thr = torch.tensor(1.0), torch.tensor(1.0)
    want = _leaky_spikes(current, 1.0, 1.0, reset)
    got = lif_sequence(current.clone(), beta, thr, 5.0, reset)
    if reset == "subtract":              # U: 1, 1, 2 (fires), 1.5 (fires), 1.0: never fires at exactly 1
        assert want.flatten().tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    mem, steps = None, []
    for cur in current:
        spk, mem = lif_step(cur, mem, beta, thr, 5.0, reset)
        steps.append(spk)
    torch.testing.assert_close(torch.stack(steps), want, rtol=0, atol=0)


def test_lif_step_passes_the_gradient_through_its_returned_membrane():
    """lif_step's docstring: "the gradient reaches current through the surrogate and through the returned
    membrane". dU[t]/dI[t] = 1, so a loss on the membrane alone gives I the gradient 1, and 1 + 4/9 with the
    spikes' surrogate added (U = 0.5, thr 1, slope 1: 1 / (1 + 0.5)^2 = 4/9)."""
    from spikecl.snn.fused import lif_step

    current = torch.full((2, 3), 0.5, requires_grad=True)
    beta, thr = torch.tensor(0.9), torch.tensor(1.0)
    _, mem = lif_step(current, None, beta, thr, 1.0, "subtract")
    mem.sum().backward()
    torch.testing.assert_close(current.grad, torch.ones(2, 3))
    current.grad = None
    spk, mem = lif_step(current, None, beta, thr, 1.0, "subtract")
    (spk.sum() + mem.sum()).backward()
    torch.testing.assert_close(current.grad, torch.full((2, 3), 1 + 4 / 9))


def test_lifparams_defaults_are_the_configs_network_defaults():
    """build_mlp / build_cnn default to LIFParams(): a network built from the Python API without settings must be
    the one a config without [network] settings builds (beta 0.9, threshold 1, subtract, slope 25)."""
    import dataclasses

    from spikecl.config import NetworkConfig

    cfg = NetworkConfig()
    assert dataclasses.astuple(LIFParams()) == (cfg.beta, cfg.threshold, cfg.reset, cfg.surrogate_slope)
    assert dataclasses.astuple(LIFParams()) == (0.9, 1.0, "subtract", 25.0)


class _InfPenaltyOnce:
    """A strategy whose penalty is +inf on its first batch (gradient 0: the weights stay finite), None after."""

    uses_activity = False
    name = "inf-once"

    def __init__(self, net):
        self.net, self.calls = net, 0

    def penalty(self):
        self.calls += 1
        if self.calls > 1:
            return None
        p = next(self.net.parameters())
        return p.sum() * 0 + float("inf")

    def after_backward(self, activity=None):
        pass

    def after_step(self):
        pass


@pytest.mark.parametrize("read_every", [None, 3])
def test_a_non_finite_penalty_is_reported_even_when_the_flags_are_read_later(read_every):
    """train_encoded checks ``loss + penalty`` (a diverged penalty is a diverged run), and check_finite keeps every
    step's flag until it is read: with read_every = 3, a NaN/inf at step 1 is raised at step 3's read, not
    forgotten because steps 2 and 3 were finite."""
    torch.manual_seed(0)
    net = build_mlp(4, [8], 3)
    trainer = make_trainer("bptt", net, 2)
    trainer.read_every = read_every
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    hooks = _InfPenaltyOnce(net)
    x_seq, y = encode(torch.rand(5, 4), 2), torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(NumericalError, match="training loss became NaN or infinite"):
        for _ in range(3):
            trainer.train_encoded(x_seq, y, None, None, opt, hooks)
    assert hooks.calls == (1 if read_every is None else 3)
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_the_rate_gradient_divides_by_the_threshold():
    """rate_coded: the gradient reaching current[t] is sum_s grad[s] / (T · threshold) where mean_t current /
    threshold lies in (0, 1). With threshold 2, a constant current 1 over T = 4 and a loss summing the spikes
    (grad 1 at every step): rate 0.5, gradient 4 / (4 · 2) = 0.5 (without the division the rate would be 1,
    outside (0, 1), and the gradient 0)."""
    from spikecl.snn.layers import rate_coded

    current = torch.ones(4, 1, 3, requires_grad=True)
    spikes = torch.zeros(4, 1, 3)
    out = rate_coded(spikes, current, torch.tensor(2.0))
    assert torch.equal(out, spikes)
    out.sum().backward()
    torch.testing.assert_close(current.grad, torch.full((4, 1, 3), 4 / (4 * 2.0)))


def test_the_online_loss_is_a_mean_over_the_time_steps():
    """OnlineTrainer: each step's loss is divided by num_steps (the loss and the gradients are means over T, as
    BPTT's are, so train.lr means the same for every T). With all weights zero every step's logits are equal:
    cross-entropy log(3) per step, and the trainer's loss log(3) for any T (not T · log(3))."""
    import math

    for steps in (1, 4):
        net = build_mlp(4, [8], 3)
        with torch.no_grad():
            for p in net.parameters():
                p.zero_()
        trainer = make_trainer("online", net, steps)
        loss = trainer.train_encoded(encode(torch.rand(5, 4), steps), torch.tensor([0, 1, 2, 0, 1]), None, None,
                                     torch.optim.SGD(net.parameters(), lr=0.0), )
        assert float(loss) == pytest.approx(math.log(3), rel=1e-6)


def test_a_training_step_puts_the_network_in_training_mode():
    """train_encoded trains in training mode whatever mode the network was left in (net.eval() by a user or a
    strategy's own pass): batch normalisation then uses and updates the batch statistics."""
    torch.manual_seed(0)
    net = build_cnn((1, 4, 4), [2], 3)
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    net.eval()
    trainer = make_trainer("bptt", net, 2)
    trainer.train_batch(torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), None, None,
                        torch.optim.SGD(net.parameters(), lr=0.1))
    assert net.training and bn.training
    assert int(bn.num_batches_tracked) == 1 and bn.running_mean.abs().sum() > 0


def test_the_dsr_trainer_differentiates_the_firing_rates_not_through_time():
    """train.trainer = "dsr" (RateTrainer) takes its gradients from net(x, rate_gradient=True): its weight
    gradients are those of the rate-coded pass, not BPTT's (which they would silently equal otherwise)."""
    import copy

    import torch.nn.functional as F

    class Keep(TrainingHooks):
        def after_backward(self, activity=None):
            self.grads = [p.grad.clone() for p in net.parameters()]

    torch.manual_seed(0)
    base = build_mlp(6, [10], 3)
    with torch.no_grad():
        next(base.parameters()).mul_(3.0)                  # hidden neurons fire at varied rates
    x_seq, y = encode(torch.rand(8, 6), 6), torch.randint(0, 3, (8,))

    def reference(rate_gradient):
        ref = copy.deepcopy(base)
        ref.train()
        F.cross_entropy(ref(x_seq, None, rate_gradient=rate_gradient), y).backward()
        return [p.grad for p in ref.parameters()]

    net = copy.deepcopy(base)
    hooks = Keep()
    make_trainer("dsr", net, 6).train_encoded(x_seq, y, None, None, torch.optim.SGD(net.parameters(), lr=0.0), hooks)
    rate, bptt = reference(True), reference(False)
    for got, want in zip(hooks.grads, rate):
        torch.testing.assert_close(got, want)
    assert not torch.allclose(rate[0], bptt[0])


def test_an_accuracy_is_the_exact_fraction_of_correct_predictions():
    """``evaluate`` gives correct / N in float64, as a data-parallel run's shares sum to; a float32 mean rounded
    it (205 / 359 came back as 0.57103061676), so a one-process and a two-process file differed in every cell."""
    from spikecl.snn.trainers import predict

    torch.manual_seed(0)
    net = build_mlp(6, [16], 3)
    x, y = torch.rand(359, 6), torch.randint(0, 3, (359,))
    correct = int((predict(net, x, 2) == y).sum())
    assert 0 < correct < 359 and float(torch.tensor(correct / 359, dtype=torch.float32)) != correct / 359
    assert evaluate(net, x, y, 2) == correct / 359


def test_api_edges_are_one_line_errors_naming_the_problem():
    """A 0-dim encoder input (direct gave [T] with no sample axis, poisson an IndexError), a numpy array fed to the
    network (the message blamed its correct shape), a workload batch of 0 (a bare ValueError), activity asked of
    more samples than a task has (fewer came back in silence) and a NaN subspace (blamed on its shape)."""
    from spikecl.continual.strategies import build_strategy
    from spikecl.continual.strategy import Simulation, TaskData
    from spikecl.snn import measures

    net = build_mlp(12, [8], 3)
    for kind in ("direct", "poisson", "latency"):
        with pytest.raises(ShapeError, match=r"^encoder input of shape \(\) has no sample axis; expected \[B, "):
            encode(torch.tensor(0.5), 2, kind)
    with pytest.raises(ShapeError, match=r"^network input is a ndarray; expected a torch tensor \[T, B, \*\(12,\)\]"):
        net(np.random.rand(2, 2, 12).astype(np.float32))
    with pytest.raises(ConfigError, match="batch_size"):
        measures.workload(net, torch.rand(5, 12), 3, batch_size=0)
    s = build_strategy("gpm", net, sim=Simulation(num_steps=3))
    data = TaskData(0, torch.rand(5, 12), torch.randint(0, 3, (5,)), None)
    assert s.activity_of(data, 5).of("layers.0").shape == (3, 5, 12)
    with pytest.raises(DataError, match=r"^gpm: activity of 9 samples asked of task 0, which has 5; ask for "):
        s.activity_of(data, 9)
    h = build_strategy("hlop", net, sim=Simulation(num_steps=3))
    with pytest.raises(Exception, match=r"^hlop: layers.0's subspace rows hold NaN or infinity$"):
        h.load_subspace("layers.0", np.full((1, 12), np.nan))


def test_overflowing_logits_are_an_error_not_an_accuracy():
    """Finite but huge readout weights overflow the logits: argmax over NaN picked output 0 and evaluate returned
    an accuracy; now a one-line NumericalError."""
    torch.manual_seed(0)
    net = build_mlp(6, [16], 3)
    with torch.no_grad():
        net.readout.heads[0].weight.copy_(torch.sign(torch.randn_like(net.readout.heads[0].weight)) * 3e38)
    with pytest.raises(NumericalError, match="^the network's logits are NaN or infinite"):
        evaluate(net, torch.rand(8, 6), torch.randint(0, 3, (8,)), 4)


def test_the_rate_gradient_of_an_overflowing_current_is_zero_not_nan():
    """DSR's rate view multiplied an infinite rate by 0 (outside (0, 1)): the spikes themselves became NaN."""
    from spikecl.snn.layers import rate_coded

    spikes = torch.ones(2, 3)
    current = torch.tensor([[1e38, 0.5, -1.0], [1e38, 0.5, -1.0]], requires_grad=True)
    out = rate_coded(spikes, current * 10, 1e-6)                  # rates inf, 5e6, -1e7: all outside (0, 1)
    assert torch.equal(out, spikes)
    out.sum().backward()
    assert torch.equal(current.grad, torch.zeros(2, 3))


def test_flipped_and_rotated_numpy_arrays_are_inputs_like_any_other():
    """np.flip and np.rot90 give views with negative strides, which torch.as_tensor refuses."""
    from spikecl.snn import encode
    from spikecl.snn.checks import as_input

    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    for view in (np.flip(x, axis=0), np.rot90(x, axes=(2, 3))):
        assert torch.equal(as_input(view), torch.from_numpy(view.copy()))
        assert torch.equal(encode(view, 2, "direct"), encode(view.copy(), 2, "direct"))


@pytest.mark.parametrize("encoder", ["direct", "poisson"])
def test_an_evaluation_batch_that_would_not_fit_in_memory_is_split_with_the_same_predictions(monkeypatch, encoder):
    """On the CPU an evaluation batch whose activations would exceed half the memory free (the CIFAR CNN at T = 20:
    ~14 MB a sample, 7 GB at the default 500) is evaluated in fewer samples at a time, sized by a one-sample pass;
    predictions (Poisson draws included) are those of the whole batch."""
    from spikecl import environment
    from spikecl.snn.trainers import fitting_batch, predict

    torch.manual_seed(0)
    net = build_cnn((1, 8, 8), [4, 8], 5)
    x = torch.rand(60, 1, 8, 8)
    whole = predict(net, x, 6, encoder, batch_size=60, generator=torch.Generator().manual_seed(3))
    seen = []
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda inputs, heads=None: seen.append(inputs.shape) or forward(inputs, heads))
    monkeypatch.setattr(environment, "available_memory", lambda: 2 * 10 * 40_000)   # room for ~10 samples
    per_sample = fitting_batch(net, x, 6, encoder, None, 1_000_000)
    assert 1 <= per_sample < 60
    seen.clear()
    split = predict(net, x, 6, encoder, batch_size=60, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(split, whole, rtol=0, atol=0)
    assert len(seen) == -(-60 // per_sample)                      # the chunks: the network was sized once before
    monkeypatch.setattr(environment, "available_memory", lambda: None)               # unknown: as asked
    assert fitting_batch(net, x, 6, encoder, None, 60) == 60
