"""NeuroBench measures (spikecl.snn.measures) against hand-computed values; their place in results and reports."""

import numpy as np
import pytest
import torch
from torch import nn

from spikecl.continual import report
from spikecl.continual.results import ContinualResult, read_continual, write_continual
from spikecl.snn import measures
from spikecl.snn.networks import build_cnn, build_mlp


def test_footprint_counts_parameter_and_buffer_bytes():
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1), nn.BatchNorm1d(1))
    # weights 6 + 2, bias 1, BN weight + bias 2 (float32); BN running mean + var 2 (float32), batches seen 1 (int64)
    assert measures.footprint(net) == (6 + 2 + 1 + 2 + 2) * 4 + 8


def test_connection_sparsity_counts_synapse_weights_only():
    net = nn.Sequential(nn.Linear(3, 2), nn.Conv2d(1, 1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
        net[0].bias.zero_()                              # biases are not connections
        net[1].weight.fill_(0.0)
    assert measures.connection_sparsity(net) == pytest.approx(4 / 7)


def test_synapse_operations_by_hand():
    linear = nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
    x = torch.tensor([[1.0, 0.0, 0.5]])
    assert measures.synapse_operations(linear, x, dense=True) == 6
    assert measures.synapse_operations(linear, x, dense=False) == 1 + 2      # inputs 0 and 2: nonzero weights
    conv = nn.Conv2d(1, 1, 3, padding=1)
    # 3x3 output of a 3x3 kernel on a zero-padded 3x3 input: corners see 4 taps, edges 6, the centre 9
    assert measures.synapse_operations(conv, torch.zeros(1, 1, 3, 3), dense=True) == 4 * 4 + 4 * 6 + 9
    rows = measures.spiking_rows(torch.tensor([[0.0, 1.0, -1.0], [0.0, 0.5, 1.0], [2.0, 0.0, 0.0]]))
    assert rows.tolist() == [True, False, False]


def test_acs_and_macs_do_not_depend_on_the_batch_size():
    """One event frame with a count of 2 makes its own step MACs, not its batch's: the per-inference split is
    the same at every evaluation batch size: 53.25 / 2 ACs / MACs per inference here, where NeuroBench 2.3.0's
    per-call decision gives 49.25 / 6, 35.25 / 20 and 9.25 / 46 at batch sizes 1, 4 and 8 (measured with its
    source: a count in a call makes every sample of that call's step MACs, even at batch 1)."""
    torch.manual_seed(0)
    net = build_mlp(4, [8], 2)
    x = (torch.rand(8, 3, 4) < 0.5).float()
    x[0, 0, 0] = 2.0
    split = [(m["effective_acs"], m["effective_macs"])
             for m in (measures.workload(net, x, 3, encoder="events", batch_size=b) for b in (1, 4, 8))]
    assert split[0] == split[1] == split[2] == (53.25, 2.0)


def tiny_network() -> nn.Module:
    """2-2-1 MLP (beta 0.9, threshold 1, subtract reset): hidden neuron 0 gets 1.2 x0, neuron 1 nothing."""
    net = build_mlp(2, [2], 1, init_gain=1.0)
    with torch.no_grad():
        net.layers[0].synapse.weight.copy_(torch.tensor([[1.2, 0.0], [0.0, 0.0]]))
        net.readout.heads[0].weight.copy_(torch.tensor([[1.0, 1.0]]))
    return net


@pytest.mark.parametrize("engine", ["snntorch", "fused"])
def test_workload_of_a_tiny_network_by_hand(engine):
    net = tiny_network()
    net.engine = engine
    m = measures.workload(net, torch.tensor([[0.5, 0.0]]), num_steps=4)
    # hidden 0: current 0.6; membrane 0.6, 1.14 (spike), 0.626, 1.163 (spike) -> spikes at steps 1 and 3
    # readout: current = hidden spike; membrane 0, 1.0, 0.9, 1.81 -> crosses its threshold once (step 3)
    assert m["dense_synops"] == 4 * (2 * 2 + 2 * 1)
    assert m["effective_macs"] == 4 * 1          # graded input 0.5 through the one nonzero weight, every step
    assert m["effective_acs"] == 2 * 1           # two hidden spikes, each through one readout weight
    assert m["activation_sparsity"] == pytest.approx(1 - 3 / 12)     # 3 nonzero of 4 steps x 3 neurons
    assert m["membrane_updates"] == (2 + 3) + (1 + 3)   # all at step 0, then only the changing membranes
    assert net.engine == engine                  # measured on snnTorch, engine restored
    assert measures.static(net)["connection_sparsity"] == pytest.approx(3 / 6)


def test_accumulates_or_macs_are_decided_per_time_step():
    """Event frames: a step holding a count of 2 is MACs, a step of plain spikes ACs, though the layer calls its
    synapse once on the whole sequence."""
    net = tiny_network()
    x = torch.tensor([[[2.0, 0.0], [1.0, 0.0]]])                   # [B = 1, T = 2, 2] event frames (counts)
    m = measures.workload(net, x, num_steps=2, encoder="events")
    # hidden neuron 0: current 2.4 (spike at step 0), then 0.9 * (2.4 - 1) + 1.2 = 2.46 (spike at step 1)
    assert m["effective_macs"] == 1                                # step 0: one input of 2 through one weight
    assert m["effective_acs"] == 1 + 2 * 1                         # step 1: one spike in; two hidden spikes out


def test_workload_is_per_sample_over_batches():
    net = tiny_network()
    x = torch.tensor([[0.5, 0.0]]).repeat(5, 1)
    one = measures.workload(net, x[:1], num_steps=4)
    assert measures.workload(net, x, num_steps=4, batch_size=2) == pytest.approx(one)


def _result(method, acc_final, synops, measured=True):
    acc = np.full((3, 2), acc_final)
    values = {"effective_acs": np.array([synops, synops]), "effective_macs": np.zeros(2),
              "footprint_bytes": np.array([2048.0, 2048.0])} if measured else {}
    return ContinualResult(method, 0, {"name": "x"}, acc, np.zeros(0, np.int64), np.zeros(0, np.int64),
                           np.zeros((0, 2)), np.ones(2), {"acc": acc_final}, measures=values)


def test_results_files_keep_measures_and_older_files_read(tmp_path):
    write_continual(tmp_path / "a.h5", _result("ewc", 0.8, 120.0))
    write_continual(tmp_path / "old.h5", _result("ewc", 0.8, 0.0, measured=False))
    np.testing.assert_array_equal(read_continual(tmp_path / "a.h5").measures["effective_acs"], [120.0, 120.0])
    assert read_continual(tmp_path / "old.h5").measures == {}


def test_report_table_and_accuracy_synops_plot(tmp_path):
    runs = [_result("finetune", 0.5, 100.0), _result("ewc", 0.8, 300.0), _result("old", 0.7, 0.0, False)]
    text = report.text_report(runs, matrices=False)
    assert "KiB" in text and "ACs" in text
    row = next(line for line in text.splitlines() if line.startswith("ewc") and "300" in line)
    assert "2.0" in row                          # 2048 bytes in KiB
    assert set(report.accuracy_synops(runs)) == {"finetune", "ewc"}
    written = report.write_plots(runs, tmp_path)
    assert (tmp_path / "accuracy-synops.png") in written and (tmp_path / "accuracy-synops.png").stat().st_size


def test_measures_of_only_some_seeds_are_said_so(monkeypatch, tmp_path):
    """A seed whose file holds no measures (written before they were recorded) beside one that does: the table's
    mean is seed 0's alone, and the report and the plot's label say "1 of 2 seeds"."""
    from dataclasses import replace

    runs = [_result("ewc", 0.8, 300.0), replace(_result("ewc", 0.6, 0.0, measured=False), seed=1),
            _result("finetune", 0.5, 100.0)]
    text = report.text_report(runs, matrices=False)
    assert "Measures from only some seeds (the others' files hold none): ewc, 1 of 2 seeds" in text
    assert "finetune, " not in text.split("Measures from only some seeds")[1]
    from spikecl.continual import plots
    labels = []
    monkeypatch.setattr(plots, "plot_accuracy_vs_synops",
                        lambda points, path, colours=None, note="", title="": labels.extend(points)
                        or labels.append(title) or path)
    report.write_plots(runs, tmp_path)
    assert sorted(labels[:-1]) == ["ewc (1 of 2 seeds)", "finetune"]
    assert labels[-1] == f"{report.experiment_title(runs)}accuracy against synaptic operations"


def test_loihi_energy_by_hand():
    from types import SimpleNamespace

    from spikecl.export import energy

    net = SimpleNamespace(num_steps=4, layers=[SimpleNamespace(n_out=64), SimpleNamespace(n_out=10)])
    assert energy.neuron_updates(net) == 4 * 74
    assert energy.energy_joules(1000, 296) == pytest.approx(1000 * 23.6e-12 + 296 * 52e-12)


def test_fixed_point_measures_and_energy_by_hand():
    """Hidden weights [[.5, 0, .25], [0, 0, .5]] (3 of 6 nonzero), readout [[.5, .5], [0, .5]] (3 of 4), T = 2, two
    samples, the second silent. Graded input [5, 0, 7] then [0, 0, 3] reaches 1 + 2, then 2 synapses: 5 MACs, 2.5
    per inference. Hidden spikes [1, 0] then [1, 1] reach 1, then 1 + 2 synapses: 4 ACs, 2 per inference. Dense:
    2 steps x 10 synapses. Activation sparsity: 3 of the hidden layer's 2 x 2 x 2 outputs spike (the readout's are
    left out). Neuron updates: 2 steps x 4 neurons; energy: (2 + 2.5) SynOps x 23.6 pJ + 8 updates x 52 pJ."""
    from spikecl.export import energy
    from spikecl.export.quantize import quantize
    from spikecl.export.spec import LayerSpec, NetworkSpec

    hidden = LayerSpec("hidden0", np.array([[0.5, 0, 0.25], [0, 0, 0.5]]), None, 0.9, 1.0, "zero")
    readout = LayerSpec("readout", np.array([[0.5, 0.5], [0, 0.5]]), None, 0.9, 1.0, "none")
    net = quantize(NetworkSpec((hidden, readout), 2, "direct", 2))
    inputs = np.zeros((2, 2, 3), dtype=np.int64)
    inputs[:, 0] = [[5, 0, 7], [0, 0, 3]]
    spikes = [np.zeros((2, 2, 2), dtype=np.uint8), np.zeros((2, 2, 2), dtype=np.uint8)]
    spikes[0][:, 0] = [[1, 0], [1, 1]]
    m = energy.fixed_measures(net, inputs, spikes)
    assert m == pytest.approx({"dense_synops": 20.0, "effective_acs": 2.0, "effective_macs": 2.5,
                               "connection_sparsity": 0.4, "hidden_activation_sparsity": 1 - 3 / 8,
                               "neuron_updates": 8.0, "energy_j": 4.5 * 23.6e-12 + 8 * 52e-12}, rel=1e-12)


def test_a_cnn_readouts_split_does_not_depend_on_the_batch_at_one_step():
    """At T = 1 the readout's [1, B, n] call is split by sample too (graded pooled values in one sample only)."""
    from spikecl.snn.networks import build_cnn

    net = build_cnn((1, 4, 4), [1], 2, batch_norm=False)
    with torch.no_grad():
        net.layers[0].synapse.weight.fill_(1.0)
        net.readout.heads[0].weight.fill_(1.0)
    x = torch.zeros(2, 1, 4, 4)
    x[0] = 1.0
    x[1, 0, 1, 1] = 2.0
    for steps in (1, 2):
        split = [(m["effective_acs"], m["effective_macs"])
                 for m in (measures.workload(net, x, steps, batch_size=b) for b in (1, 2))]
        assert split[0] == split[1]


def test_synapse_operations_are_exact_beyond_float32_integers():
    """Over 2^24 connections in one call (a wide layer on a batch) are counted exactly: summed in float64 (float32
    rounds 20,505,485 to 20,505,484)."""
    linear = nn.Linear(1001, 4097, bias=False)
    with torch.no_grad():
        linear.weight.fill_(0.5)
    x = torch.ones(5, 1001)
    assert measures.synapse_operations(linear, x, dense=True) == 1001 * 4097 * 5
    assert measures.synapse_operations(linear, x, dense=False) == 1001 * 4097 * 5
    conv = nn.Conv2d(2048, 1024, 3, padding=1, bias=False)     # the centre output reaches 2047·9·1023 > 2^24
    with torch.no_grad():
        conv.weight.fill_(0.5)[0] = 0                            # an output channel without synapses
    x = torch.ones(1, 2048, 3, 3)
    x[:, 0] = 0                                                  # an input channel that is silent
    counts = [measures.synapse_operations(conv, x, dense) for dense in (True, False)]
    assert counts == [2048 * 1024 * (9 + 4 * 6 + 4 * 4), 2047 * 1023 * (9 + 4 * 6 + 4 * 4)]


@pytest.mark.parametrize("synapse", [nn.Linear(7, 5, bias=True), nn.Conv2d(3, 4, 3, padding=1),
                                     nn.Conv2d(3, 4, 3, stride=2), nn.Conv2d(4, 6, 3, padding=1, groups=2)])
def test_synapse_operations_equal_the_synapse_run_with_0_1_weights_on_0_1_inputs(synapse):
    """The definition, computed as it reads (a weight-sized 0/1 copy, the synapse's own call), on sparse weights and
    inputs: the counts, made without the copy, are the same."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        synapse.weight.mul_(torch.rand(synapse.weight.shape, generator=generator) < 0.6)
    shape = (9, 7) if isinstance(synapse, nn.Linear) else (2, synapse.in_channels, 6, 5)
    x = torch.rand(shape, generator=generator) * (torch.rand(shape, generator=generator) < 0.5)
    for dense in (True, False):
        weight = torch.ones_like(synapse.weight) if dense else (synapse.weight != 0).float()
        ones = torch.ones_like(x) if dense else (x != 0).float()
        out = (nn.functional.linear(ones, weight) if isinstance(synapse, nn.Linear)
               else synapse._conv_forward(ones, weight, None))
        assert measures.synapse_operations(synapse, x, dense) == int(out.sum().item()) > 0


def test_measures_leave_batch_norm_statistics_training_mode_and_hooks_as_they_were():
    """A network in training mode is measured in evaluation mode (its batch norm's running statistics are not
    updated) and given back in training mode, with no forward hook left on any module."""
    torch.manual_seed(0)
    net = build_cnn((1, 4, 4), [2], 2)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    measures.workload(net, torch.rand(3, 1, 4, 4), 2)
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in net.modules())


def test_each_batch_of_a_multi_head_workload_reads_its_own_heads():
    """The readout's integrator runs on the head each sample names (head 0 silent: its membrane updates once;
    head 1 driven: at each of 4 steps), so samples measured in batches of 2 give the numbers of one batch of 4."""
    net = build_mlp(2, [2], 1, n_heads=2, init_gain=1.0)
    with torch.no_grad():
        net.layers[0].synapse.weight.fill_(1.0)
        net.readout.heads[0].weight.fill_(0.0)
        net.readout.heads[1].weight.fill_(1.0)
    x, heads = torch.full((4, 2), 0.8), torch.tensor([0, 0, 1, 1])
    whole = measures.workload(net, x, 4, heads=heads, batch_size=4)
    assert whole["membrane_updates"] == (2 * (8 + 1) + 2 * (8 + 4)) / 4      # 2 hidden neurons x 4 steps each
    assert measures.workload(net, x, 4, heads=heads, batch_size=2) == pytest.approx(whole)
