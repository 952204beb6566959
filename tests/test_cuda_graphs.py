"""CUDA graphs of the training pass (``train.cuda_graph``): the same steps as eager execution, on a GPU; refused
clearly where they cannot run."""

import copy

import pytest
import torch

from spikecl.config import experiment_from_dict
from spikecl.continual.runner import ContinualRun
from spikecl.errors import ConfigError
from spikecl.snn import LIFParams, build_cnn, build_mlp, encode, make_trainer
from spikecl.snn.cuda_graphs import GraphedPasses
from spikecl.snn.trainers import TrainingHooks

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
ENGINES = ["fused", "snntorch", pytest.param("triton", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("triton") is None, reason="no triton package"))]

DIGITS = {"name": "graphs", "seeds": [0], "data": {"dataset": "digits"},
          "stream": {"kind": "split", "scenario": "task", "n_tasks": 5, "train_per_task": 192},
          "network": {"hidden": [48], "num_steps": 4},
          "train": {"epochs": 2, "batch_size": 32, "eval_every": 0}}


def experiment(tmp_path, **changes):
    raw = {**DIGITS, "output_dir": str(tmp_path)}
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return experiment_from_dict(raw)


def test_cuda_graphs_are_refused_on_the_cpu_with_compile_and_in_bfloat16(tmp_path):
    with pytest.raises(ConfigError, match="train.cuda_graph: CUDA graphs run on CUDA; device 'cpu'"):
        experiment(tmp_path, train={"cuda_graph": True})
    for train, match in (({"compile": True}, "not combined with train.compile"),
                         ({"precision": "bfloat16"}, "'bfloat16' is not combined with train.cuda_graph")):
        with pytest.raises(ConfigError, match=match):
            experiment(tmp_path, device="cuda", train={"cuda_graph": True, **train})
    trainer = make_trainer("bptt", build_mlp(6, [5], 3), 4)
    with pytest.raises(ConfigError, match="the network is on cpu; CUDA graphs need a CUDA device"):
        trainer.use_cuda_graphs()
    assert trainer.graphs is None


def test_cuda_graphs_on_device_auto_follow_whether_cuda_is_there(tmp_path, monkeypatch):
    """device = "auto" is the CPU without CUDA: train.cuda_graph is refused there at once, as with "cpu"; where
    CUDA is available it is accepted."""
    monkeypatch.setattr("spikecl.config._cuda_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA graphs run on CUDA; device 'auto' is the CPU here"):
        experiment(tmp_path, device="auto", train={"cuda_graph": True})
    monkeypatch.setattr("spikecl.config._cuda_available", lambda: True)
    assert experiment(tmp_path, device="auto", train={"cuda_graph": True}).train.cuda_graph is True


def test_a_trainer_refuses_graphs_in_bfloat16_or_compiled_and_compile_once_graphed(tmp_path, monkeypatch):
    """The trainer's own checks match the config's: use_cuda_graphs refuses bfloat16 and a compiled pass by name
    (before it looks at the device), and compile() is refused once graphs replay the pass."""
    with pytest.raises(ConfigError, match="'bfloat16' is not combined with train.cuda_graph"):
        make_trainer("bptt", build_mlp(6, [5], 3), 4, precision="bfloat16").use_cuda_graphs()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))        # compile() leaves a chosen folder alone
    compiled = make_trainer("bptt", build_mlp(6, [5], 3), 4)
    compiled.compile()
    with pytest.raises(ConfigError, match="train.cuda_graph: not combined with train.compile"):
        compiled.use_cuda_graphs()
    graphed = make_trainer("bptt", build_mlp(6, [5], 3), 4)
    graphed.graphs = GraphedPasses(graphed.net, graphed.task_loss_backward)    # what use_cuda_graphs sets on CUDA
    with pytest.raises(ConfigError, match="train.cuda_graph: not combined with train.compile"):
        graphed.compile()
    assert graphed.forward is graphed.net


def test_a_run_recorded_before_cuda_graphs_existed_reads_as_one_without_them():
    from spikecl.recorded import recorded_as_now
    assert recorded_as_now({"kind": "continual", "train": {"lr": 0.1}})["train"]["cuda_graph"] is False


def _steps(trainer, optimizer, batches, hooks=TrainingHooks()):
    """Losses of ``trainer``'s steps on ``batches`` [(x_seq, y, heads)], then its parameters."""
    losses = [trainer.train_encoded(x_seq, y, heads, None, optimizer, hooks).item() for x_seq, y, heads in batches]
    return losses, [p.detach().clone() for p in trainer.net.parameters()]


def _pair(net, trainer_name, steps=4):
    """An eager trainer and a graphed one on copies of ``net`` (on CUDA), each with SGD and momentum."""
    out = []
    for graphed in (False, True):
        trainer = make_trainer(trainer_name, copy.deepcopy(net).cuda(), steps)
        if graphed:
            trainer.use_cuda_graphs()
        out.append((trainer, torch.optim.SGD(trainer.net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)))
    return out


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("trainer_name", ["bptt", "dsr", "online"])
@pytest.mark.parametrize("encoder", ["direct", "poisson"])
def test_a_graphed_step_is_the_eager_step(trainer_name, engine, encoder):
    """Losses and parameters after six steps (batches of 16, 16, 16, 5, 16, 5: two captures) equal eager execution's;
    the heads of a multi-head readout and a direct input's repeated time axis are kept."""
    torch.manual_seed(0)
    net = build_mlp(20, [24, 16], 4, LIFParams(beta=0.8), n_heads=2, bias=True, engine=engine)
    generator = torch.Generator().manual_seed(1)
    batches = []
    for batch in (16, 16, 16, 5, 16, 5):
        x = torch.rand(batch, 20, generator=generator).cuda()
        x_seq = encode(x, 4, encoder, torch.Generator(device="cuda").manual_seed(batch))
        batches.append((x_seq, torch.randint(0, 4, (batch,), generator=generator).cuda(),
                        torch.randint(0, 2, (batch,), generator=generator).cuda()))
    (eager, opt_e), (graphed, opt_g) = _pair(net, trainer_name)
    losses_e, params_e = _steps(eager, opt_e, batches)
    losses_g, params_g = _steps(graphed, opt_g, batches)
    assert graphed.graphs.captures == 2
    assert losses_g == pytest.approx(losses_e, abs=1e-5)
    for a, b in zip(params_e, params_g):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert any((a != p).any() for a, p in zip(params_g, net.cuda().parameters()))       # it did learn


@pytest.mark.gpu
@needs_cuda
def test_a_graphed_pass_projects_each_batchs_own_inputs():
    """A layer handed a projector (as HLOP and GPM hand them, fewer input rows than outputs) gets the weight gradient
    of each batch's own projected inputs, as eagerly: the capture records the projection rather than reusing a
    result the projector kept from the warm-up passes on the same input tensor."""
    from spikecl.continual.projection import Projector

    torch.manual_seed(0)
    net = build_mlp(20, [24], 4, LIFParams(beta=0.8))
    basis = torch.linalg.qr(torch.randn(20, 5))[0].T.contiguous().cuda()        # [5, 20], orthonormal rows
    grads = []
    for trainer, optimizer in _pair(net, "bptt"):
        projector, layer, kept = Projector(basis), trainer.net.layers[0], []
        hooks = TrainingHooks()
        hooks.projections = lambda: {layer: projector}
        for x in torch.rand(5, 8, 20, generator=torch.Generator().manual_seed(2)).cuda():
            projector.used = False
            trainer.train_encoded(encode(x, 4, "direct"), torch.arange(8).cuda() % 4, None, None, optimizer, hooks)
            assert projector.used and layer.weight_projection is None
            projector.forget()
            kept.append(layer.synapse.weight.grad.clone())
        grads.append(kept)
    for eager, graphed in zip(*grads):
        torch.testing.assert_close(graphed, eager, atol=1e-6, rtol=1e-5)
        assert eager.abs().max() > 1e-4                                         # a gradient to compare


@pytest.mark.gpu
@needs_cuda
def test_a_graphed_cnn_keeps_batch_norm_statistics_as_eager_steps_do():
    """Batch-norm running statistics after three graphed steps equal eager ones: the warm-up before a capture leaves
    no trace in them."""
    torch.manual_seed(0)
    net = build_cnn((2, 8, 8), [4, 6], 3)
    x = torch.rand(3, 8, 2, 8, 8).cuda()
    batches = [(encode(x[i], 4, "direct"), torch.tensor([0, 1, 2, 1, 0, 2, 1, 0]).cuda(), None) for i in range(3)]
    (eager, opt_e), (graphed, opt_g) = _pair(net, "bptt")
    losses_e, _ = _steps(eager, opt_e, batches)
    losses_g, _ = _steps(graphed, opt_g, batches)
    assert losses_g == pytest.approx(losses_e, abs=1e-5)
    for (name, a), (_, b) in zip(eager.net.named_buffers(), graphed.net.named_buffers()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=name)



@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("method", ["finetune", "ewc", "hlop", "gpm"])
def test_a_graphed_run_gives_the_eager_runs_accuracies(tmp_path, method):
    """The first three tasks of a 5-task task-incremental run (heads, a penalty, HLOP's recorded activity and input
    projection, GPM's gradient projection) with ``train.cuda_graph`` give the eager run's accuracies after them
    (whole batches only, so both train on the same samples), and its weights to 1e-4."""
    rows, weights = {}, {}
    for graphed in (False, True):
        cfg = experiment(tmp_path / str(graphed), device="cuda", strategy={"methods": [method]},
                         train={"cuda_graph": graphed})
        run = ContinualRun(cfg, method, 0)
        for task in range(3):
            run.train_task(task)
        rows[graphed], weights[graphed] = run.accuracy_row(2), run.net.state_dict()
        if graphed:
            assert run.trainer.graphs.captures >= 1
    assert rows[True] == pytest.approx(rows[False], abs=0.02)
    for name, value in weights[False].items():
        torch.testing.assert_close(weights[True][name], value, atol=1e-4, rtol=1e-4, msg=name)

