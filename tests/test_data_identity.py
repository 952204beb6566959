"""Which data files a run read: --resume, the report and a sweep keep a run only on the files it was trained on
(its recorded ``data_crc``); a moved copy of the same files is the same data."""

import contextlib
import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from spikecl.cli import main
from spikecl.continual.sweep import load_sweep, made_otherwise, other_files
from spikecl.errors import ConfigError
from spikecl.io import read_run
from test_datasets import tiny_mnist

MODELS = Path(__file__).resolve().parents[1] / "models"

EXPERIMENT = """
name = "files"
seeds = [0]
[data]
dataset = "mnist"
[stream]
kind = "permuted"
scenario = "domain"
n_tasks = 1
first_task_identity = true
[network]
hidden = [6]
num_steps = 2
[train]
epochs = 1
batch_size = 25
[strategy]
methods = ["finetune"]
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of MNIST-format files with other images (``a``, ``b``), a copy of ``a`` (``moved``), an
    experiment file and an output folder holding seed 0 trained on ``a``."""
    root = tmp_path_factory.mktemp("data_identity")
    tiny_mnist(root / "a", n_train=100, n_test=60, seed=0)
    tiny_mnist(root / "b", n_train=100, n_test=60, seed=1)
    shutil.copytree(root / "a", root / "moved")
    (root / "files.toml").write_text(EXPERIMENT)
    assert run(root, "a", "--seed", "0") == 0
    return root


def run(root, folder, *args) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["run", str(root / "files.toml"), "--no-progress", "--no-plots", "--output-dir",
                     str(root / "out"), "--data-dir", str(root / folder), *args])


def test_resume_refuses_a_run_trained_on_other_files_and_keeps_it_from_a_moved_copy(folders, capsys):
    seed0 = folders / "out" / "files" / "finetune-seed0.h5"
    trained_on = read_run(seed0).environment["data_crc"]
    assert run(folders, "b", "--seed", "0", "--resume") == 2
    err = capsys.readouterr().err
    assert f"{seed0} was trained on other data files (data_crc {trained_on}, read from {folders / 'a'}; the files " \
           f"in {folders / 'b'} now give " in err                      # the folder given now, not the recorded one
    assert "pass --overwrite as well to train it on these, or point --data-dir at its files" in err
    assert len(err.strip().splitlines()) == 1
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", str(folders / "files.toml"), "--no-progress", "--no-plots", "--output-dir",
                     str(folders / "out"), "--data-dir", str(folders / "moved"), "--seed", "0", "--resume"]) == 0
    assert "complete, kept" in printed.getvalue()
    assert read_run(seed0).environment["data_crc"] == trained_on


def test_the_report_refuses_seeds_trained_on_other_files(folders, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(folders / "out", out)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(folders / "files.toml"), "--no-progress", "--no-plots", "--output-dir", str(out),
                     "--data-dir", str(folders / "b"), "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["report", str(out / "files"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "hold finetune trained on different data files (data_crc" in err and "report them separately" in err
    shutil.rmtree(out / "files")
    with contextlib.redirect_stdout(io.StringIO()):       # the moved copy: the same data, one experiment
        for seed in ("0", "1"):
            assert main(["run", str(folders / "files.toml"), "--no-progress", "--no-plots", "--output-dir", str(out),
                         "--data-dir", str(folders / ("a" if seed == "0" else "moved")), "--seed", seed]) == 0
    assert main(["report", str(out / "files"), "--no-plots"]) == 0


def test_a_sweep_trains_again_a_run_whose_files_changed(folders, tmp_path):
    (tmp_path / "sweep.toml").write_text(f'base = "{folders / "files.toml"}"\n[set]\n'
                                         f'"data.data_dir" = "{folders / "a"}"\n')
    planned = load_sweep(tmp_path / "sweep.toml").runs[0]
    trained_on = read_run(folders / "out" / "files" / "finetune-seed0.h5").environment["data_crc"]
    assert other_files(planned, SimpleNamespace(environment={"data_crc": trained_on}, config={})) is None
    assert other_files(planned, SimpleNamespace(environment={"data_crc": trained_on + 1}, config={})) == "data_crc"
    assert other_files(planned, SimpleNamespace(environment={}, config={})) is None     # recorded none: not checked
    kept, sweep = read_run(folders / "out" / "files" / "finetune-seed0.h5"), load_sweep(tmp_path / "sweep.toml")
    assert made_otherwise(sweep, {planned.id: kept}) == {}
    moved = SimpleNamespace(environment={**kept.environment, "data_crc": trained_on + 1}, config=kept.config)
    assert made_otherwise(sweep, {planned.id: moved}) == {planned.id: "data_crc"}   # its settings alike, its files not
    with pytest.raises(ConfigError, match="made with other settings than sweep sweep plans \\(data_crc differs\\)"):
        from spikecl.continual.sweep import refuse_other_settings
        refuse_other_settings(load_sweep(tmp_path / "sweep.toml"), {planned.id: "data_crc"})


SPARSEY_SMALL = ["eval.train_items=100", "eval.test_items=30", "eval.capacity_points=[50,100]",
                 "eval.random_capacity_points=[10]", "eval.cue_items=20", "eval.cue_levels=[0.0]", "eval.sequences=0",
                 "eval.spiking_items=0", "eval.n_pairs=50", "eval.pair_items=20", 'data.dataset="mnist"']


def test_sparsey_records_its_files_and_resume_keeps_its_run_only_on_them(folders, tmp_path, capsys):
    """models/sparsey_mnist5k.toml as shipped (its [coder.top] table unread with two_level = false) on MNIST files:
    the same command with --resume keeps the seed; other files are refused."""
    def sparsey(folder, *args) -> tuple[int, str]:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["run", str(MODELS / "sparsey_mnist5k.toml"), "--no-progress", "--no-plots", "--output-dir",
                         str(tmp_path), "--data-dir", str(folders / folder), *args,
                         *[a for kv in SPARSEY_SMALL for a in ("--set", kv)]])
        return code, printed.getvalue()

    assert sparsey("a")[0] == 0
    seed0 = tmp_path / "sparsey-mnist5k" / "sparsey_seed0.h5"
    trained_on = read_run(seed0).environment["data_crc"]
    code, printed = sparsey("moved", "--resume")
    assert code == 0 and "complete, kept" in printed
    capsys.readouterr()
    assert sparsey("b", "--resume")[0] == 2
    assert f"{seed0} was trained on other data files (data_crc {trained_on}" in capsys.readouterr().err


def test_an_existing_run_made_otherwise_names_the_setting_not_resume(folders, capsys):
    """`exists; pass --overwrite ... or --resume to keep it` sent a user to --resume, which then refused the other
    settings; the first message says what differs and how to keep both."""
    assert run(folders, "a", "--seed", "0", "--set", "train.epochs=2") == 2
    err = capsys.readouterr().err
    assert ("finetune-seed0.h5 exists, made with another config (train.epochs differs); choose another --output-dir "
            "(or --set name=...) to keep both, or pass --overwrite to replace it") in err
    assert run(folders, "a", "--seed", "0") == 2
    assert "finetune-seed0.h5 exists; pass --overwrite to replace it or --resume to keep it" in capsys.readouterr().err
