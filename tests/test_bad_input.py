"""Bad experiment files are refused before any work, in one line naming the problem: encodings, names that would
write outside the output folder, repeated or oversized seeds, empty or oversized layers, absurd learning rates."""

import pytest

from spikecl.cli import main
from spikecl.config import experiment_from_dict, load_experiment
from spikecl.errors import ConfigError


@pytest.mark.parametrize("raw, message", [
    ({"name": "../outside"}, "not a plain file name"),
    ({"name": "/tmp/abs"}, "not a plain file name"),
    ({"name": ".."}, "not a plain file name"),
    ({"name": ""}, "not a plain file name"),
    ({"seeds": [3, 1, 3]}, "seeds: 3 appears more than once"),
    ({"seeds": [10 ** 23]}, "does not fit in a 64-bit integer"),
    ({"seeds": [-1]}, "below the minimum 0"),
    ({"network": {"hidden": [0]}}, r"network.hidden\[0\]: 0 is below the minimum 1"),
    ({"network": {"hidden": [256, -5]}}, r"network.hidden\[1\]: -5 is below the minimum 1"),
    ({"network": {"hidden": [10 ** 12]}}, "above the maximum"),
    ({"network": {"kind": "cnn", "channels": [0]}}, r"network.channels\[0\]"),
    ({"train": {"lr": 1e308}}, "train.lr: 1e\\+308 is above the maximum 100.0"),
    ({"train": {"lr": float("nan")}}, "expected a finite number"),
    ({"train": {"weight_decay": 5.0}}, "train.weight_decay"),
])
def test_bad_values_are_config_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        experiment_from_dict(raw)


@pytest.mark.parametrize("encoding, message", [("utf-16", "not UTF-8 text"), ("latin-1", "not UTF-8 text")])
def test_a_file_that_is_not_utf8_is_one_line(tmp_path, capsys, encoding, message):
    path = tmp_path / "exp.toml"
    path.write_bytes('name = "café"\n'.encode(encoding))
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("argv, message", [
    (["run"], "the following arguments are required: experiment"),
    (["run", "x.toml", "--seed"], "argument --seed: expected one argument"),
    (["report"], "the following arguments are required"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["export", "x.h5", "--weight-bits", "many"], "invalid int value: 'many'"),
])
def test_argument_errors_are_one_line_naming_help(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert message in err and err.startswith("spikecl: error: ") and "--help)" in err
