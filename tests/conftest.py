"""Shared fixtures: small real datasets loaded once per session. Without a GPU, Triton kernels (the triton engine)
run in Triton's interpreter on CPU tensors."""

import importlib.util
import os

import pytest

#: under pytest-xdist (``make test``) each of the N workers, and the processes its tests start, take their share of
#: the cores: N workers of torch's default thread count oversubscribe them, and OpenMP's spinning threads then made a
#: 6-second fixture of two processes take 225 s
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    from spikecl.launcher import cores

    os.environ["OMP_NUM_THREADS"] = str(max(1, cores() // WORKERS))

#: spikecl's core runs without torch; its test suite does not (the core alone: tests/test_core_py310.py)
TORCH = all(importlib.util.find_spec(package) is not None for package in ("torch", "snntorch"))
if TORCH:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if WORKERS > 1:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_configure(config):
    if not TORCH:
        raise pytest.UsageError("spikecl's tests need torch and snnTorch: pip install -e '.[torch,brian2,data,dev]' "
                                "(or run `make test`, which makes every environment they use)")


@pytest.fixture(autouse=True)
def plugins_loaded_by_the_test_end_with_it():
    """A plugin a test loads is not recorded in the environment of later tests' results."""
    from restoring import restored

    from spikecl.environment import PLUGINS

    with restored(PLUGINS):
        yield


@pytest.fixture(scope="session")
def digits():
    """scikit-learn digits as (x_train [N, 64], y_train, x_test, y_test), float32 in [0, 1], fixed split."""
    from spikecl.data.datasets import load_dataset

    d = load_dataset("digits", seed=0)
    return (d.x_train.reshape(len(d.x_train), -1), d.y_train, d.x_test.reshape(len(d.x_test), -1), d.y_test)


@pytest.fixture
def sweep_files(tmp_path):
    """``write(base, sweep)``: writes ``base.toml`` and ``sweep.toml`` (``{out}`` in the sweep text becomes the
    results folder) into ``tmp_path`` and returns the sweep file's path."""
    def write(base: str, sweep: str):
        (tmp_path / "base.toml").write_text(base)
        path = tmp_path / "sweep.toml"
        path.write_text(sweep.format(out=tmp_path / "results"))
        return path

    return write


@pytest.fixture
def fail_runs(monkeypatch, tmp_path):
    """``fail({run id: n}, error)``: the sweep's run of each id raises ``error`` (default: a RuntimeError named
    InjectedFailure) ``injected failure on attempt <k>`` on its first n attempts (this test's, counted from here).
    The Ray task ``sweep_ray.train_run`` is replaced by a wrapper defined in a function, which Ray ships to its
    workers by value (a module-level function of tests/ would be imported there, where tests/ is not on the path);
    it counts attempts in files, as workers are other processes."""
    from spikecl.continual import sweep_ray

    real, attempts = sweep_ray.train_run, tmp_path / "attempts"
    attempts.mkdir()

    def fail(failing: dict[str, int], error: type[Exception] | None = None) -> None:
        class InjectedFailure(RuntimeError):
            """A crash of a run on purpose (retried)."""

        def train_run(raw, *args):
            run_id = f"{raw['name']}/{raw['strategy']['methods'][0]}-seed{raw['seeds'][0]}"
            tries = attempts / run_id.replace("/", "~")
            attempt = len(tries.read_text()) if tries.exists() else 0
            tries.write_text("x" * (attempt + 1))
            if attempt < failing.get(run_id, 0):
                raise (error or InjectedFailure)(f"injected failure on attempt {attempt + 1}")
            return real(raw, *args)

        monkeypatch.setattr(sweep_ray, "train_run", train_run)

    return fail


@pytest.fixture(scope="session")
def zero_reset_run(tmp_path_factory):
    """A digits MLP (64-64-10, reset to zero) trained by the continual runner: (results path, checkpoint path,
    trained torch network). Deployable on Loihi; shared by the export and Lava tests."""
    from spikecl.config import experiment_from_dict
    from spikecl.run_files import checkpoint_path
    from spikecl.continual.runner import ContinualRun

    cfg = experiment_from_dict({
        "name": "digits-zero", "seeds": [0], "data": {"dataset": "digits"},
        "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 1, "first_task_identity": True},
        "network": {"kind": "mlp", "hidden": [64], "num_steps": 4, "reset": "zero"},
        "train": {"epochs": 6, "batch_size": 32, "lr": 0.05}, "strategy": {"methods": ["finetune"]}})
    folder = tmp_path_factory.mktemp("zero_reset_run")
    run = ContinualRun(cfg, "finetune", 0)
    results = folder / "finetune-seed0.h5"
    run.execute(results, progress_bar=False)
    ckpt = checkpoint_path(results)
    run.save_checkpoint(ckpt)
    return results, ckpt, run.net


DIGITS_NETWORKS = {
    "direct": ({"kind": "mlp", "hidden": [64]}, 1, "finetune", 6),
    "latency": ({"kind": "mlp", "hidden": [64], "encoder": "latency"}, 1, "finetune", 6),
    "poisson": ({"kind": "mlp", "hidden": [64], "encoder": "poisson"}, 1, "finetune", 6),
    "hlop": ({"kind": "mlp", "hidden": [64]}, 2, "hlop", 3),
    "cnn": ({"kind": "cnn", "channels": [8, 16], "init_gain": 2.0}, 1, "finetune", 3),
}


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """``make(kind)``: results file of a small deployable digits network (reset zero, T = 4) trained by the
    continual runner, cached per session. Kinds: direct, latency and poisson MLPs 64-64-10, an HLOP MLP on 2
    permuted tasks, the CNN conv 8 - conv 16 (batch norm, pooling)."""
    from spikecl.config import experiment_from_dict
    from spikecl.continual.runner import ContinualRun

    made = {}

    def make(kind: str):
        if kind not in made:
            network, tasks, method, epochs = DIGITS_NETWORKS[kind]
            cfg = experiment_from_dict({
                "name": f"digits-{kind}", "seeds": [0], "data": {"dataset": "digits"},
                "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": tasks, "first_task_identity": True},
                "network": {**network, "num_steps": 4, "reset": "zero"},
                "train": {"epochs": epochs, "batch_size": 32, "lr": 0.05}, "strategy": {"methods": [method]}})
            made[kind] = tmp_path_factory.mktemp(f"digits_{kind}") / f"{method}-seed0.h5"
            ContinualRun(cfg, method, 0).execute(made[kind], progress_bar=False)
        return made[kind]

    return make
