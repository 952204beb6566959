"""Datasets of one's own (``spikecl.data.register_dataset``), loaded by ``--plugin``: they run, resume, report and
export like spikecl's own; a bad registration or a loader's bad data is a one-line error; results record the CRC
of what the loader returned, so that runs on other data are not mixed."""

import dataclasses
import functools

import numpy as np
import pytest
from restoring import restored

from spikecl.cli import main
from spikecl.config import REGISTERED_DATASETS, experiment_from_dict
from spikecl.run_files import checkpoint_path
from spikecl.continual.results import read_continual
from spikecl.continual.runner import ContinualRun
from spikecl.data import register_dataset
from spikecl.data.base import Dataset
from spikecl.data.datasets import load_dataset, registered_crc
from spikecl.errors import ConfigError, DataError
from spikecl.io import read_run

#: four classes of 4x4 images, a bright pixel at each class's place on a noisy background, 60 train / 30 test each
PLUGIN = '''import numpy as np
from spikecl.data import register_dataset
from spikecl.data.base import Dataset

def load(seed):
    rng = np.random.default_rng(seed)
    def split(per_class):
        y = rng.permutation(np.repeat(np.arange(4), per_class))
        x = rng.uniform(0, 0.3, (len(y), 1, 4, 4)).astype(np.float32)
        x[np.arange(len(y)), 0, y // 2 * 2 + 1, y % 2 * 2 + 1] = {brightness}
        return x, y.astype(np.int64)
    return Dataset("blobs", *split(60), *split(30), 4)

register_dataset("blobs", load, (1, 4, 4), 4)
'''
EXPERIMENT = ('name = "blobs"\n[data]\ndataset = "blobs"\n[stream]\nkind = "split"\nscenario = "class"\nn_tasks = 2\n'
              '[network]\nhidden = [8]\nnum_steps = 2\nreset = "zero"\n[train]\nepochs = 1\neval_every = 0\n'
              '[strategy]\nmethods = ["finetune"]\n')


@pytest.fixture(autouse=True)
def registry():
    """Datasets a test registers end with the test."""
    with restored(REGISTERED_DATASETS):
        yield


def files(tmp_path, brightness=1.0):
    """(plugin, experiment file) in ``tmp_path``; the plugin's classes are bright pixels of ``brightness``."""
    plugin, exp = tmp_path / "blobs_plugin.py", tmp_path / "blobs.toml"
    plugin.write_text(PLUGIN.replace("{brightness}", repr(brightness)))
    exp.write_text(f'output_dir = "{tmp_path / "out"}"\n' + EXPERIMENT)
    return plugin, exp


def run(exp, *args):
    return main(["run", str(exp), "--no-progress", "--no-plots", "--threads", "1", *map(str, args)])


def without_plugin():
    """As in a process that loaded no plugin."""
    REGISTERED_DATASETS.clear()


def test_a_dataset_of_your_own_runs_from_the_command_line_and_reports_without_its_plugin(tmp_path, capsys):
    plugin, exp = files(tmp_path)
    assert run(exp) == 2
    err = capsys.readouterr().err
    assert "data.dataset: 'blobs' is not allowed; choose one of digits" in err and err.count("\n") == 1
    assert err.rstrip().endswith("dvs_gesture; one of your own: register it in a file passed with --plugin")
    assert run(exp, "--plugin", plugin) == 0
    result = read_continual(tmp_path / "out" / "blobs" / "finetune-seed0.h5")
    assert result.acc_matrix.shape == (3, 2) and result.config["data"]["dataset"] == "blobs"
    assert result.config["data_crc"] == result.environment["data_crc"] == registered_crc("blobs", 0)
    capsys.readouterr()
    without_plugin()
    assert main(["report", str(tmp_path / "out" / "blobs"), "--no-plots"]) == 0      # reading needs no data
    assert "finetune" in capsys.readouterr().out


def killed_in_task_2(monkeypatch):
    """Runs stop as a kill would as they start their second task (after the first one's checkpoint)."""
    train_task = ContinualRun.train_task

    def killed(self, task, bar=None):
        if task == 1:
            raise KeyboardInterrupt
        return train_task(self, task, bar)

    monkeypatch.setattr(ContinualRun, "train_task", killed)


def test_a_killed_run_on_a_dataset_of_your_own_resumes_to_the_uninterrupted_numbers(tmp_path, capsys, monkeypatch):
    plugin, exp = files(tmp_path)
    killed_in_task_2(monkeypatch)
    assert run(exp, "--plugin", plugin) == 130
    results = tmp_path / "out" / "blobs" / "finetune-seed0.h5"
    assert checkpoint_path(results).exists() and not results.exists()
    monkeypatch.undo()
    without_plugin()                                             # the resuming process loads the plugin again
    assert run(exp, "--plugin", plugin, "--resume") == 0
    assert run(exp, "--plugin", plugin, "--output-dir", tmp_path / "whole") == 0
    whole = read_continual(tmp_path / "whole" / "blobs" / "finetune-seed0.h5")
    assert np.array_equal(read_continual(results).acc_matrix, whole.acc_matrix)


def test_runs_on_other_data_of_one_registered_name_are_not_mixed(tmp_path, capsys, monkeypatch):
    """The loader returns other data (its plugin changed): --resume refuses the finished run and the checkpoint
    made on the first data, and the report refuses to average seeds run on each."""
    plugin, exp = files(tmp_path)
    assert run(exp, "--plugin", plugin, "--seed", "0") == 0
    killed_in_task_2(monkeypatch)
    assert run(exp, "--plugin", plugin, "--seed", "1") == 130                 # a checkpoint of seed 1, on that data
    monkeypatch.undo()
    files(tmp_path, brightness=0.5)
    capsys.readouterr()
    assert run(exp, "--plugin", plugin, "--seed", "0", "--resume") == 2
    err = capsys.readouterr().err
    assert "finetune-seed0.h5 was made with another config (data_crc differs)" in err and err.count("\n") == 1
    assert run(exp, "--plugin", plugin, "--seed", "1", "--resume") == 2
    err = capsys.readouterr().err
    assert "finetune-seed1.ckpt was written by a different experiment config (data_crc differs)" in err
    assert run(exp, "--plugin", plugin, "--seed", "1", "--overwrite") == 0
    capsys.readouterr()
    without_plugin()
    assert main(["report", str(tmp_path / "out" / "blobs"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "hold finetune made with different settings (data_crc differs)" in err and err.count("\n") == 1


def test_a_network_trained_on_a_dataset_of_your_own_exports_with_its_plugin(tmp_path, capsys):
    plugin, exp = files(tmp_path)
    assert run(exp, "--plugin", plugin) == 0
    results, net = tmp_path / "out" / "blobs" / "finetune-seed0.h5", tmp_path / "net.h5"
    export = ["export", str(results), "-o", str(net), "--samples", "20", "--force"]
    capsys.readouterr()
    without_plugin()
    assert main(export) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not net.exists()
    assert "data.dataset 'blobs' is not registered; pass the --plugin that registers it" in err
    assert main([*export, "--plugin", str(plugin), "--data-dir", str(tmp_path)]) == 2
    assert "trained on blobs, which is registered (its loader finds its own data)" in capsys.readouterr().err
    assert main([*export, "--plugin", str(plugin)]) == 0 and net.exists()
    assert "wrote" in capsys.readouterr().out
    files(tmp_path, brightness=0.5)
    assert main([*export, "--plugin", str(plugin), "--overwrite"]) == 2
    assert "trained on other blobs data (its registered loader returns other" in capsys.readouterr().err


#: a one-pass Sparsey coder of the 4x4 blobs: one mac over the whole image
SPARSEY = ('kind = "sparsey"\nname = "blobs-sparsey"\nseeds = [0]\n[data]\ndataset = "blobs"\n'
           '[coder]\nimage_shape = [4, 4]\nlayout = "grid"\ngrid = [1, 1]\npatch = [4, 4]\nn_macs = 1\n'
           'two_level = false\n[coder.mac]\nn_cms = 4\ncells_per_cm = 4\n[baseline]\nn_columns = 64\n'
           'sparsity = 0.0625\n[eval]\nknn_k = 3\nn_pairs = 200\npair_items = 40\ncapacity_points = [20, 60]\n'
           'random_capacity_points = [5, 10]\ncue_items = 20\ncue_levels = [0.0, 0.5]\n')


def test_a_dataset_of_your_own_is_coded_by_sparsey_and_its_runs_on_other_data_are_not_mixed(tmp_path, capsys):
    """A registered dataset of one-channel images runs the sparsey kind as spikecl's own do: the one bright pixel
    of each class is learned in one pass (k-NN on the codes 100 %), its results record the CRC of the loader's
    data and report without the plugin; once the loader returns other data, --resume refuses the finished seed.
    A colour dataset of one's own is refused when the config loads."""
    plugin, _ = files(tmp_path)
    exp = tmp_path / "sparsey.toml"
    exp.write_text(f'output_dir = "{tmp_path / "out"}"\n' + SPARSEY)
    assert run(exp) == 2
    assert "data.dataset: 'blobs' is not allowed" in capsys.readouterr().err
    assert run(exp, "--plugin", plugin) == 0
    result = read_run(tmp_path / "out" / "blobs-sparsey" / "sparsey_seed0.h5")
    assert result.config["data_crc"] == registered_crc("blobs", 0) and result.attrs["n_train"] == 240
    assert result.metrics["sparsey_acc_knn3"] == result.metrics["pooler_acc_knn3"] == 1.0
    capsys.readouterr()
    without_plugin()
    assert main(["report", str(tmp_path / "out" / "blobs-sparsey"), "--no-plots"]) == 0
    assert "Sparsey" in capsys.readouterr().out
    files(tmp_path, brightness=0.5)
    assert run(exp, "--plugin", plugin, "--resume") == 2
    err = capsys.readouterr().err
    assert "sparsey_seed0.h5 was made with another config (data_crc differs)" in err and err.count("\n") == 1
    plugin.write_text(plugin.read_text().replace("(1, 4, 4), 4)", "(3, 4, 4), 4)").replace("1, 4, 4)", "3, 4, 4)"))
    without_plugin()
    assert run(exp, "--plugin", plugin, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "data.dataset: 'blobs' is of 3-channel images; the coder reads one-channel images" in err
    assert err.count("\n") == 1


def test_the_data_folder_and_excluded_test_splits_are_refused_for_a_dataset_of_your_own(tmp_path, capsys):
    plugin, exp = files(tmp_path)
    assert run(exp, "--plugin", plugin, "--data-dir", tmp_path) == 2
    assert "--data-dir: every run of this experiment reads blobs, which is registered" in capsys.readouterr().err
    assert run(exp, "--plugin", plugin, "--set", "data.test_excludes=[1]") == 2
    assert "data.test_excludes: blobs is a registered dataset" in capsys.readouterr().err
    assert run(exp, "--plugin", plugin, "--set", 'data.dataset="blob"') == 2
    assert "choose one of digits" in (err := capsys.readouterr().err) and "blobs; did you mean 'blobs'?" in err
    assert not (tmp_path / "out").exists()


def _load(seed):
    x = np.full((8, 1, 4, 4), 0.5, np.float32)
    return Dataset("mine", x, np.arange(8) % 4, x.copy(), np.arange(8) % 4, 4)


def _other_load(seed):
    return _load(seed)


def _load_from(seed, folder):
    return _load(seed)


@pytest.mark.parametrize("args, message", [
    (("a b", _load, (1, 4, 4), 4), "dataset name 'a b': use letters, digits, '_', '-' and '.'"),
    ((None, _load, (1, 4, 4), 4), "dataset name None: use letters"),
    (("digits", _load, (1, 8, 8), 10), "register_dataset: 'digits' is one of spikecl's own datasets"),
    (("mine", "load", (1, 4, 4), 4), "register_dataset('mine', ...): load must be a function of the seed"),
    (("mine", _load, (4, 4), 4), "input_shape must be 3 positive integers (C, H, W), got (4, 4)"),
    (("mine", _load, (1, 0, 4), 4), "input_shape must be 3 positive integers"),
    (("mine", _load, (1, 4.0, 4), 4), "input_shape must be 3 positive integers"),
    (("mine", _load, (1, True, 4), 4), "input_shape must be 3 positive integers"),
    (("mine", _load, (1, 4, 4), 1), "n_classes must be a whole number >= 2, got 1"),
    (("mine", _load, (1, 4, 4), 2.0), "n_classes must be a whole number >= 2"),
    (("held", _other_load, (1, 4, 4), 4), "register_dataset: 'held' is registered already, by _load (line "),
    (("held", functools.partial(_other_load), (1, 4, 4), 4), "by _load (line "),      # a partial: its function
    (("held", lambda seed: _load(seed), (1, 4, 4), 4), "by _load (line "),
    (("held", _load, (1, 8, 8), 4), "register_dataset: 'held' is registered already with input_shape (1, 4, 4) and "
                                    "4 classes; register the other shape or classes under another name"),
    (("held", _load, (1, 4, 4), 5), "registered already with input_shape (1, 4, 4) and 4 classes"),
])
def test_a_bad_registration_is_one_line(args, message):
    register_dataset("held", _load, (1, 4, 4), 4)
    register_dataset("held", _load, (1, 4, 4), 4)                   # the same loader again (a plugin read twice)
    with pytest.raises(ConfigError) as caught:
        register_dataset(*args)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_name_held_by_a_partial_binding_other_arguments_is_refused():
    """A partial of one loader reading another folder is another loader (it replaced the first silently); the same
    partial made again (a plugin read twice) registers again."""
    register_dataset("mine", functools.partial(_load_from, folder="A"), (1, 4, 4), 4)
    register_dataset("mine", functools.partial(_load_from, folder="A"), (1, 4, 4), 4)
    with pytest.raises(ConfigError, match=r"^register_dataset: 'mine' is registered already, by _load_from \(line \d+\)"
                                          r" of test_registered_datasets with other arguments bound; register "
                                          r"_load_from under another name$"):
        register_dataset("mine", functools.partial(_load_from, folder="B"), (1, 4, 4), 4)
    with pytest.raises(ConfigError, match="with other arguments bound"):              # arrays by their bytes
        mask = np.zeros(5000)
        register_dataset("masked", functools.partial(_load_from, folder=mask), (1, 4, 4), 4)
        mask = mask.copy()
        mask[2500] = 1                                                                 # the same repr, other data
        register_dataset("masked", functools.partial(_load_from, folder=mask), (1, 4, 4), 4)


def test_a_plugin_read_again_whose_partial_binds_an_object_registers_again(tmp_path):
    """An object told only by its address (``<Noise object at 0x...>``) is new at every import: a plugin read twice
    (a Ray worker loads it for every run) registers its partial again, as before partials were compared."""
    from spikecl.plugins import load_plugin

    plugin = tmp_path / "noisy_plugin.py"
    plugin.write_text(PLUGIN.replace("{brightness}", "1.0").replace(
        'register_dataset("blobs", load, (1, 4, 4), 4)',
        "import functools\n\nclass Noise:\n    def __init__(self, level):\n        self.level = level\n\n"
        "def load_with(seed, noise):\n    return load(seed)\n\n"
        'register_dataset("noisy", functools.partial(load_with, noise=Noise(0.4)), (1, 4, 4), 4)'))
    load_plugin(str(plugin))
    load_plugin(str(plugin))
    assert "noisy" in REGISTERED_DATASETS


def test_a_bad_registration_in_a_plugin_is_one_line_before_anything_runs(tmp_path, capsys):
    plugin, exp = files(tmp_path)
    plugin.write_text(plugin.read_text().replace('register_dataset("blobs", load, (1, 4, 4), 4)',
                                                 'register_dataset("blobs", load, (1, 4, 4), 1)'))
    assert run(exp, "--plugin", plugin) == 2
    err = capsys.readouterr().err
    assert f"--plugin {plugin}: register_dataset('blobs', ...): n_classes must be a whole number >= 2" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def _changed(**arrays):
    """A loader returning a valid dataset whose arrays were changed afterwards (they are the loader's own)."""
    def load(seed):
        dataset = _load(seed)
        for key, change in arrays.items():
            object.__setattr__(dataset, key, change(getattr(dataset, key)))
        return dataset

    return load


def _set(index, value):
    def change(array):
        array = array.copy()
        array[index] = value
        return array

    return change


@pytest.mark.parametrize("load, message", [
    (lambda seed: (np.zeros((8, 1, 4, 4), np.float32), np.arange(8) % 4),
     "registered dataset bad: load(0) returned tuple, not a spikecl.data.base.Dataset"),
    (lambda seed: Dataset("bad", *[np.zeros((8, 1, 4, 5), np.float32), np.arange(8) % 4] * 2, 4),
     "registered dataset bad: x_train holds samples of shape (1, 4, 5), registered as (1, 4, 4) (C, H, W)"),
    (_changed(y_test=_set(0, 4)), "registered dataset bad: y_test has labels outside 0..3"),
    (_changed(y_train=lambda y: y % 3), "registered dataset bad: class 3 has no train sample"),
    (_changed(x_train=lambda x: x.astype(np.float64)), "registered dataset bad: x_train must be float32"),
    (_changed(x_train=_set((0, 0, 0, 0), 1.5)), "registered dataset bad: x_train holds pixel values outside 0..1"),
    (_changed(x_test=_set((1, 0, 2, 2), np.nan)), "registered dataset bad: x_test contains NaN or infinity"),
    (lambda seed: Dataset("bad", np.zeros((8, 1, 4, 4), np.float32), np.arange(8) % 4,
                          np.zeros((0, 1, 4, 4), np.float32), np.zeros(0, np.int64), 4),
     "registered dataset bad: load(0) failed: bad: the test split holds no samples"),
    (lambda seed: dataclasses.replace(_load(seed), n_classes=5),
     "registered dataset bad: load(0) returned 5 classes, registered with 4"),
])
def test_what_a_loader_returns_is_checked_once_in_one_line_naming_the_dataset(load, message):
    register_dataset("bad", load, (1, 4, 4), 4)
    with pytest.raises(DataError) as caught:
        load_dataset("bad", seed=0)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_registered_dataset_is_loaded_once_per_seed_and_builds_every_stream():
    calls = []

    def load(seed):
        calls.append(seed)
        return _load(seed)

    register_dataset("mine", load, (1, 4, 4), 4)
    for kind, scenario in (("split", "class"), ("split", "task"), ("permuted", "domain"), ("rotated", "class")):
        stream = {"kind": kind, "scenario": scenario, "n_tasks": 2}
        cfg = experiment_from_dict({"data": {"dataset": "mine"}, "stream": stream, "network": {"hidden": [8]},
                                    "train": {"batch_size": 4}, "strategy": {"methods": ["finetune"]}})
        assert ContinualRun(cfg, "finetune", 0).stream.tasks[0].x_train.shape[1:] == (1, 4, 4)
    assert calls == [0] and load_dataset("mine", seed=3).n_classes == 4 and calls == [0, 3]


@pytest.mark.slow
def test_each_process_of_an_nproc_run_loads_the_registered_dataset(tmp_path):
    plugin, exp = files(tmp_path)
    assert run(exp, "--plugin", plugin, "--nproc", "2") == 0
    result = read_continual(tmp_path / "out" / "blobs" / "finetune-seed0.h5")
    assert result.acc_matrix.shape == (3, 2) and result.config["data_crc"] == registered_crc("blobs", 0)


@pytest.mark.slow
def test_an_nproc_run_whose_processes_load_other_data_stops_in_one_line(tmp_path, capsys):
    """A loader that depends on something else than its seed (here the process's rank) gave each process other
    data, and the run recorded rank 0's CRC alone."""
    plugin, exp = files(tmp_path, brightness=0.5)
    by_rank = "= 0.5 + 0.1 * int(__import__('os').environ.get('RANK', 0))\n"
    plugin.write_text(plugin.read_text().replace("= 0.5\n", by_rank))
    assert run(exp, "--plugin", plugin, "--nproc", "2") == 2
    assert "1 of 2 processes read other data than rank 0 (another CRC of the images and labels)" in \
        capsys.readouterr().err
    assert not (tmp_path / "out" / "blobs" / "finetune-seed0.h5").exists()


def test_a_loaders_own_error_and_changing_data_are_one_line():
    def missing(seed):
        raise FileNotFoundError(2, "No such file or directory", "/data/blobs.npz")

    register_dataset("gone", missing, (1, 4, 4), 4)
    with pytest.raises(DataError, match=r"^registered dataset gone: load\(0\) failed: FileNotFoundError: \[Errno 2\] "
                                        r"No such file or directory: '/data/blobs.npz'$"):
        load_dataset("gone")
    calls = []

    def drifting(seed):                                   # other data each call: a loader that ignores its seed
        calls.append(seed)
        data = _load(seed)
        return dataclasses.replace(data, x_train=np.full_like(data.x_train, 0.1 * len(calls)))

    register_dataset("drifting", drifting, (1, 4, 4), 4)
    load_dataset("drifting", seed=0)
    load_dataset("drifting", seed=1)                      # one copy held: seed 0's is loaded again next
    with pytest.raises(DataError, match=r"^registered dataset drifting: load\(0\) returned other data than it did "
                                        "before in this process"):
        load_dataset("drifting", seed=0)
    assert len(REGISTERED_DATASETS["drifting"].loaded) == 1


def test_a_loaders_own_arrays_changed_later_do_not_reach_the_runs_of_the_process():
    """A notebook registers arrays it holds, then rescales them in place: later runs in the process trained on the
    changed data while their results recorded the first CRC. The loaded dataset is a read-only copy."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(40) % 4, np.arange(20) % 4
    x_train, x_test = (rng.uniform(0, 1, (n, 1, 4, 4)).astype(np.float32) for n in (40, 20))
    register_dataset("held", lambda seed: Dataset("held", x_train, y_train, x_test, y_test, 4), (1, 4, 4), 4)
    first, crc = load_dataset("held", 0), registered_crc("held", 0)
    x_train *= 0.5
    again = load_dataset("held", 0)
    assert np.array_equal(again.x_train, first.x_train) and not np.array_equal(again.x_train, x_train)
    assert registered_crc("held", 0) == crc and not again.x_train.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        again.x_train[0] = 0


def test_a_loader_that_lists_its_samples_by_class_is_kept_in_a_fixed_random_order(tmp_path):
    """A loader returning its files class by class (as a folder-per-class reader does) fed the continual evaluation's
    first ``train.eval_samples`` test images, EWC's and GPM's first samples and Sparsey's items from class 0 alone.
    Each split is now kept in a fixed random order, the same samples, the same on every load; results record the
    rule (runs from before it, in the loader's order, are not mixed with these)."""
    from spikecl.continual.run_record import unshown_rules
    from spikecl.data.base import fixed_order

    y_train, y_test = np.repeat(np.arange(4), 50), np.repeat(np.arange(4), 25)
    x_train = np.arange(200 * 16, dtype=np.float32).reshape(200, 1, 4, 4) / 3200
    x_test = np.arange(100 * 16, dtype=np.float32).reshape(100, 1, 4, 4) / 1600
    register_dataset("sorted", lambda seed: Dataset("sorted", x_train, y_train, x_test, y_test, 4), (1, 4, 4), 4)
    data = load_dataset("sorted", 0)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        order = fixed_order(len(y))
        assert np.array_equal(getattr(data, f"y_{split}"), y[order])
        assert np.array_equal(getattr(data, f"x_{split}"), x[order])
    assert len(np.unique(data.y_test[:12])) == 4 and len(np.unique(data.y_train[:12])) == 4
    cfg = experiment_from_dict({"data": {"dataset": "sorted"}, "stream": {"kind": "permuted", "scenario": "domain",
                                "n_tasks": 2}, "network": {"hidden": [8]},
                                "train": {"eval_every": 5, "eval_samples": 20}})
    task = ContinualRun(cfg, "finetune", 0).stream.tasks[0]
    assert len(np.unique(task.y_test[:20])) == 4 and len(np.unique(task.y_train[:20])) == 4
    assert unshown_rules(cfg, "finetune")["sample_order"] == "fixed random"
