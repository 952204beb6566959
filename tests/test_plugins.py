"""``--plugin``: a user's own methods and experiment kinds run from the command line like spikecl's own, in one
process and in ``--nproc`` processes; a bad plugin is a one-line error."""

from pathlib import Path

import pytest

from spikecl import experiment_kind
from spikecl.cli import main
from spikecl.continual import strategies
from spikecl.continual.results import read_continual
from spikecl.io import read_run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ('name = "mine"\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\nscenario = "task"\nn_tasks = 2\n'
        '[network]\nhidden = [16]\nnum_steps = 2\n[train]\nepochs = 1\neval_every = 0\n'
        '[strategy]\nmethods = ["l2"]\n[strategy.l2]\nstrength = 0.5\n')


@pytest.fixture(autouse=True)
def registries(monkeypatch):
    """Registrations made by a test's plugins end with the test."""
    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    monkeypatch.setattr(experiment_kind, "_REGISTERED", {})


def run(*args):
    return main([*map(str, args), "--no-progress"])


def test_a_method_of_your_own_runs_from_the_command_line(tmp_path, capsys):
    exp = tmp_path / "mine.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + TINY)
    assert run("run", exp) == 2
    err = capsys.readouterr().err
    assert "strategy.l2: options for an unknown method" in err and "passed with --plugin" in err
    assert run("run", exp, "--plugin", EXAMPLES / "custom_strategy.py", "--no-plots") == 0
    result = read_continual(tmp_path / "mine" / "l2-seed0.h5")
    assert result.acc_matrix.shape == (3, 2) and result.config["strategy"]["options"]["l2"]["strength"] == 0.5
    assert "ACC" in capsys.readouterr().out


def test_the_example_method_anchors_each_weight_by_name_beside_a_projection(tmp_path, capsys):
    """GPM trains no bias after the first task: the example's anchor, paired by position, pulled the readout weights
    toward a hidden bias (a shape error with two hidden layers); paired by name, l2+gpm runs."""
    exp = tmp_path / "mine.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + TINY.replace("hidden = [16]", "hidden = [16, 16]\nbias = true")
                   .replace('methods = ["l2"]', 'methods = ["l2+gpm"]'))
    assert run("run", exp, "--plugin", EXAMPLES / "custom_strategy.py", "--no-plots") == 0, capsys.readouterr().err
    assert read_continual(tmp_path / "mine" / "l2+gpm-seed0.h5").acc_matrix.shape == (3, 2)


def test_results_record_the_plugin_version_and_the_report_tells_versions_apart(tmp_path, capsys):
    """A plugin fixed between two seeds: the report names which version made each (its file's CRC-32)."""
    import zlib

    exp, plugin = tmp_path / "mine.toml", tmp_path / "custom_strategy.py"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + TINY)
    plugin.write_text((EXAMPLES / "custom_strategy.py").read_text())
    first = f"{zlib.crc32(plugin.read_bytes()):08x}"
    assert run("run", exp, "--plugin", plugin, "--no-plots", "--seed", "0") == 0
    assert read_continual(tmp_path / "mine" / "l2-seed0.h5").environment["plugins"] == {"custom_strategy.py": first}
    plugin.write_text(plugin.read_text() + "# fixed\n")
    assert run("run", exp, "--plugin", plugin, "--no-plots", "--seed", "1") == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "mine"), "--no-plots"]) == 0
    second, out = f"{zlib.crc32(plugin.read_bytes()):08x}", capsys.readouterr().out
    assert second != first and "Made by " in out
    assert f", plugin custom_strategy.py {first} (l2 seed 0)" in out
    assert f", plugin custom_strategy.py {second} (l2 seed 1)" in out


def test_a_kind_of_your_own_runs_and_reports_from_the_command_line(tmp_path, capsys):
    exp = tmp_path / "rates.toml"
    exp.write_text(f'kind = "rate_curve"\noutput_dir = "{tmp_path}"\nsteps = 200\ncurrents = [0.1, 0.5]\n')
    plugin = EXAMPLES / "custom_kind.py"
    assert run("run", exp) == 2
    err = capsys.readouterr().err
    assert "kind: 'rate_curve' is not an experiment kind" in err and "registers it with --plugin" in err
    assert run("run", exp, "--plugin", plugin) == 0
    assert read_run(tmp_path / "rates" / "rate_curve-seed0.h5", "rate_curve").arrays["rates"].shape == (3, 2)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "rates"), "--no-plots", "--plugin", str(plugin)]) == 0
    assert "LIF rate (spikes per step)" in capsys.readouterr().out


def test_one_plugin_file_read_under_two_names_registers_once(tmp_path, monkeypatch):
    """The same file by a link of another name, by path and as a module, or run as a script and then imported is one
    definition (register_kind refused it as a clash of two kinds); another file's kind of the name is refused."""
    import runpy
    import shutil
    import sys

    from spikecl.errors import ConfigError
    from spikecl.plugins import load_plugin

    for name in ("custom_kind.py", "custom_strategy.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "linked.py").symlink_to(tmp_path / "custom_kind.py")
    (tmp_path / "linked_strategy.py").symlink_to(tmp_path / "custom_strategy.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("custom_kind.py", "linked.py", "custom_kind", "custom_strategy.py", "linked_strategy.py"):
        load_plugin(str(tmp_path / spec) if spec.endswith(".py") else spec)
    monkeypatch.setattr(sys, "argv", ["custom_kind.py", "--help"])          # as `python custom_kind.py` runs it
    with pytest.raises(SystemExit):
        runpy.run_path(str(tmp_path / "custom_kind.py"), run_name="__main__")
    assert experiment_kind.kind("rate_curve").name == "rate_curve" and "l2" in strategies.REGISTRY
    (tmp_path / "other.py").write_text((tmp_path / "custom_kind.py").read_text())    # another file, same text
    with pytest.raises(ConfigError, match=r"register_kind: 'rate_curve' is registered already, by RateCurveKind"):
        load_plugin(str(tmp_path / "other.py"))


@pytest.mark.slow
def test_each_process_of_an_nproc_run_loads_the_plugin(tmp_path, capsys):
    exp = tmp_path / "mine.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + TINY)
    assert run("run", exp, "--plugin", EXAMPLES / "custom_strategy.py", "--nproc", "2", "--no-plots") == 0
    assert read_continual(tmp_path / "mine" / "l2-seed0.h5").acc_matrix.shape == (3, 2)


@pytest.mark.parametrize("source, message", [
    (None, "--plugin {path}: no such file"),
    ("raise RuntimeError('broken\\nsecond line')\n", "--plugin {path} failed on import: RuntimeError: broken"),
    ("import sys\nsys.exit(3)\n", "--plugin {path} called exit(3) on import; a plugin only defines and registers"),
    ("from spikecl.continual.strategies import register\nregister('a+b', object)\n",
     "--plugin {path}: strategy name 'a+b': use letters, digits, '_', '-' and '.'"),
    ("from spikecl.continual.strategies import register\nregister('../escape', object)\n",
     "--plugin {path}: strategy name '../escape': use letters, digits"),
    ("from spikecl.continual.strategies import register, REGISTRY\nfrom spikecl.continual.strategy import Strategy\n"
     "class A(Strategy):\n    name = 'dup'\nclass B(Strategy):\n    name = 'dup'\nregister('dup', A)\n"
     "try:\n    register('dup', B)\nfinally:\n    del REGISTRY['dup']\n",
     "--plugin {path}: register: 'dup' is registered already, by A of spikecl_plugin_"),
])
def test_a_bad_plugin_is_one_line_before_anything_runs(tmp_path, capsys, source, message):
    path = tmp_path / "mine.py"
    if source is not None:
        path.write_text(source)
    exp = tmp_path / "exp.toml"
    exp.write_text(f'output_dir = "{tmp_path}"\n' + TINY)
    assert run("run", exp, "--plugin", path) == 2
    err = capsys.readouterr().err
    assert message.format(path=path) in err and err.count("\n") == 1
    assert not (tmp_path / "mine").exists()


def test_a_plugin_module_name_must_be_importable(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--plugin", "no_such_package.methods"]) == 2
    assert "--plugin no_such_package.methods: no such module" in capsys.readouterr().err


def test_a_folder_without_python_is_not_a_plugin_that_registers_nothing(tmp_path, capsys, monkeypatch):
    """``--plugin out`` where ``out`` is a results folder: Python would import it as an empty namespace package."""
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["report", str(tmp_path), "--plugin", "out"]) == 2
    err = capsys.readouterr().err
    assert "--plugin out: a folder without __init__.py, which would import as an empty namespace package" in err
