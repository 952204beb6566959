"""An error's remedy names what its caller passes: a flag of the command line there (``pass --overwrite``), a keyword
argument of the Python API in Python (``pass overwrite=True``), and a bad keyword's value is refused in one line."""

import re
from pathlib import Path

import pytest
import torch

from spikecl import cli
from spikecl.config import load_experiment
from spikecl.continual.experiment import run_experiment
from spikecl.errors import ConfigError, ExistsError
from spikecl.remedies import command_line, option

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ('seeds = [0]\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\nn_tasks = 2\n'
              'classes_per_task = 2\n[network]\nhidden = [16]\n[train]\nepochs = 1\neval_every = 0\n'
              '[strategy]\nmethods = ["finetune"]\n')


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "remedies.toml"
    path.write_text(f'output_dir = "{tmp_path / "results"}"\n' + EXPERIMENT)
    return path


def test_option_names_the_flag_on_the_command_line_and_the_keyword_in_python():
    assert option("--resume", "--overwrite") == "resume=True, overwrite=True"
    with command_line():
        assert option("--resume", "--overwrite") == "--resume --overwrite"
        with command_line(False):
            assert option("--no-plots") == "plots=False"
        assert option("--plots DIR") == "--plots DIR"
    assert option("--overwrite") == "overwrite=True"


def test_run_experiment_tells_a_python_caller_its_keywords_and_the_command_line_its_flags(experiment, capsys):
    cfg = load_experiment(experiment)
    run_experiment(cfg, progress_bar=False, log=lambda _: None)
    with pytest.raises(ExistsError, match=r"exists; pass overwrite=True to replace it or resume=True to keep it$"):
        run_experiment(cfg, progress_bar=False, log=lambda _: None)
    assert cli.main(["run", str(experiment), "--no-progress", "--no-plots"]) == 2
    assert capsys.readouterr().err.endswith("exists; pass --overwrite to replace it or --resume to keep it\n")
    with pytest.raises(ExistsError, match=r"pass overwrite=True to replace it or resume=True to keep it$"):
        run_experiment(cfg, progress_bar=False, log=lambda _: None)      # the command left Python's spelling


def test_report_paths_names_its_plots_keyword_where_the_command_names_its_flag(tmp_path, capsys):
    from spikecl.report import report_paths

    not_a_folder = tmp_path / "plots.png"
    not_a_folder.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"^plots_dir .*plots\.png: .* is not a folder$"):
        report_paths(tmp_path, plots_dir=not_a_folder)
    assert cli.main(["report", str(tmp_path), "--plots", str(not_a_folder)]) == 2
    assert capsys.readouterr().err.startswith(f"spikecl: error: --plots {not_a_folder}: ")


def test_the_processes_a_command_starts_name_its_flags(tmp_path, capsys):
    """``--nproc``'s processes are new interpreters: they take the command line's spelling from the launcher."""
    from spikecl.atomic import check_output
    from spikecl.launcher import launch

    existing = tmp_path / "net.h5"
    existing.write_bytes(b"")
    with command_line():
        assert launch(1, check_output, str(existing), threads=1) == 2
    assert f"{existing} exists; pass --overwrite to replace it" in capsys.readouterr().err


@pytest.mark.parametrize("keyword", ["resume", "overwrite"])
def test_a_switch_that_is_not_a_bool_is_refused_not_taken_as_true(experiment, keyword):
    """``resume="no"`` is truthy: it would keep (or replace) results the caller meant to keep apart."""
    from spikecl.continual.runner import ContinualRun

    cfg = load_experiment(experiment)
    with pytest.raises(ConfigError, match=rf"^{keyword}: expected a bool, got str; pass {keyword}=True or "
                                          rf"{keyword}=False$"):
        run_experiment(cfg, progress_bar=False, **{keyword: "no"})
    with pytest.raises(ConfigError, match=rf"^{keyword}: expected a bool, got str"):
        ContinualRun(cfg, "finetune", 0).execute(experiment.parent / "run.h5", progress_bar=False, **{keyword: "no"})
    assert not (experiment.parent / "results").exists() and not (experiment.parent / "run.h5").exists()


def test_a_path_that_is_no_path_is_a_one_line_error_naming_the_file_expected():
    from spikecl.experiment_kind import run_file

    with pytest.raises(ConfigError, match=r"^experiment file: expected a str or PathLike, got int$"):
        load_experiment(5)
    with pytest.raises(ConfigError, match=r"^experiment file: expected a str or PathLike, got int$"):
        run_file(5)


def test_export_and_deploy_refuse_arguments_of_the_wrong_type_and_name_their_keywords(tmp_path):
    from spikecl.export.pipeline import deploy, export_file

    with pytest.raises(ConfigError, match=r"^export_file: quant: expected a QuantConfig, got dict; e\.g\. "):
        export_file(tmp_path / "run.h5", tmp_path / "net.h5", quant={"weight_bits": 8})
    with pytest.raises(ConfigError, match=r"^fmt 'onnx': choose one of netx, nir$"):
        export_file(tmp_path / "run.h5", tmp_path / "net.h5", fmt="onnx")
    with pytest.raises(ConfigError, match=r"^deploy: samples must be a whole number of test samples or None, "
                                          r"got '10'$"):
        deploy(tmp_path / "net.h5", samples="10")
    with pytest.raises(ConfigError, match=r"^samples 0: expected at least 1$"):
        deploy(tmp_path / "net.h5", samples=0)
    with pytest.raises(ConfigError, match=r"^backend 'loihi': choose one of reference, lava-sim$"):
        deploy(tmp_path / "net.h5", backend="loihi")


def test_option_takes_the_keyword_of_the_function_where_a_flag_has_several():
    """``--data-dir`` is ``data.data_dir`` in an experiment but ``data_dir`` to export_file and deploy."""
    from spikecl.remedies import override_given, set_option

    assert option("--data-dir") == "data.data_dir" and option("--data-dir", keyword="data_dir") == "data_dir"
    assert set_option("train.lr") == "overrides=['train.lr=...']"
    assert set_option('set."train.lr"', "0.1") == "overrides=['set.\"train.lr\"=0.1']"
    assert set_option("data.pool", "1", quoted=False) == "overrides=['data.pool=1']"
    assert override_given("name='x'") == "overrides=[\"name='x'\"]"
    with command_line():
        assert option("--data-dir", keyword="data_dir") == "--data-dir"
        assert set_option("train.lr") == "--set train.lr"
        assert set_option('set."train.lr"', "0.1") == "--set 'set.\"train.lr\"=0.1'"
        assert set_option("data.pool", "1", quoted=False) == "--set data.pool=1"
        assert override_given("name='x'") == "--set \"name='x'\""
    with pytest.raises(ValueError, match="^option: a keyword names one flag, got 2$"):
        option("--resume", "--overwrite", keyword="resume=True")


@pytest.mark.parametrize("variants, override, python, flags", [
    ("", "strategy.ewc.lam=5.0", "overrides=['strategy.ewc.lam=...']: no run of this experiment uses ewc",
     "--set strategy.ewc.lam: no run of this experiment uses ewc"),
    ('[variants.fast]\nmethod = "finetune"\n"train.lr" = 0.05\n', "train.lr=0.1",
     "overrides=['train.lr=...']: every run that reads it is a variant setting it itself (fast), so it would change "
     "nothing; set it in the variant, e.g. overrides=['variants.fast.\"train.lr\"=...']",
     "--set train.lr: every run that reads it is a variant setting it itself (fast), so it would change nothing; "
     "set it in the variant, e.g. --set 'variants.fast.\"train.lr\"=...'"),
])
def test_an_override_no_run_reads_is_named_as_the_caller_passed_it(experiment, capsys, variants, override, python,
                                                                    flags):
    from spikecl.experiment_kind import run_file

    if variants:
        experiment.write_text(experiment.read_text().replace('["finetune"]', '["fast"]') + variants)
    with pytest.raises(ConfigError, match=f"^{re.escape(python)}"):
        run_file(experiment, [override], progress=False, plots=False)
    assert cli.main(["run", str(experiment), "--no-progress", "--no-plots", "--set", override]) == 2
    assert capsys.readouterr().err.startswith(f"spikecl: error: {flags}")


def test_export_file_names_its_output_keyword_where_the_command_names_o(tmp_path, capsys):
    from spikecl.export.pipeline import export_file

    source, folder = tmp_path / "run.h5", tmp_path / "out"
    folder.mkdir()
    with pytest.raises(ConfigError, match=rf"^output {re.escape(str(folder))} is a folder; name the file to write"):
        export_file(source, folder)
    assert cli.main(["export", str(source), "-o", str(folder)]) == 2
    assert capsys.readouterr().err == f"spikecl: error: -o {folder} is a folder; name the file to write, e.g. " \
                                      f"{folder / 'net.h5'}\n"
    with pytest.raises(ConfigError, match=rf"^output {re.escape(str(source))} is the source file .*; name another file "
                                          r"\(overwrite=True would replace the trained network with the export\)$"):
        export_file(source, source)


def test_the_accuracy_check_names_export_files_keywords_where_the_command_names_its_flags():
    from spikecl.errors import ExportError
    from spikecl.export.pipeline import check_accuracy_drop

    dropped = {"float_accuracy": 0.9, "reference_accuracy": 0.5, "samples": 10}
    with pytest.raises(ExportError, match=r"; an outlier weight or too few bits\? Retrain, change "
                                          r"QuantConfig\.weight_bits, QuantConfig\.input_bits or "
                                          r"QuantConfig\.headroom, raise max_drop, or max_drop=None$"):
        check_accuracy_drop(dropped, 3.0, graded_input=True)
    with command_line(), pytest.raises(ExportError, match=r"; an outlier weight or too few bits\? Retrain, change "
                                                        r"--weight-bits, raise --max-drop, or --force$"):
        check_accuracy_drop(dropped, 3.0)


@pytest.mark.parametrize("override, python, flags", [
    ("train.lr", "overrides=['train.lr']: expected key=value", "--set 'train.lr': expected key=value"),
    ("=3", "overrides=['=3']: empty key", "--set '=3': empty key"),
    ("train.lr=.001", "overrides=['train.lr=.001']: '.001' is not a TOML number", "--set 'train.lr=.001': '.001' "),
    ("name=\"open", "overrides=['name=\"open']: '\"open' is not a TOML value", "--set 'name=\"open': '\"open' is not"),
    ("train..lr=0.1", "overrides=['train..lr=...']: a dotted key has an empty part",
     "--set train..lr: a dotted key has an empty part"),
    ("a=" + "[" * 65 + "]" * 65, "overrides=['a=...']: its value nests more than 64 levels",
     "--set a: its value nests more than 64 levels"),
    ("train.epochs=" + "1" * 5000, "overrides=['train.epochs=...']: not a TOML value (Exceeds",
     "--set train.epochs: not a TOML value (Exceeds"),
    (".".join(["a"] * 65) + "=1", "overrides: key 'a.a.a", "--set: key 'a.a.a"),
    ("seeds.x=3", "overrides=['seeds.x=3']: 'seeds' is not a table", "--set 'seeds.x=3': 'seeds' is not a table"),
    ("train={epochs=1}", "overrides=['train={epochs=1}'] would replace the table train, dropping batch_size, "
                         "eval_every: set its keys one by one (overrides=['train.epochs=...']), or clear it first "
                         "(overrides=['train={}'])\n",
     "--set 'train={epochs=1}' would replace the table train, dropping batch_size, eval_every: set its keys one by "
     "one (--set train.epochs=...), or clear it first (--set 'train={}')\n"),
])
def test_a_bad_override_is_named_as_the_entry_of_overrides_in_python_and_as_the_flag_on_the_command_line(
        experiment, capsys, override, python, flags):
    """A malformed entry of a Python ``overrides`` list was named ``--set 'train.lr'``, a flag a notebook cannot
    pass; the command line's messages are as before (a message checked to its end where ``\\n`` closes it)."""
    experiment.write_text(experiment.read_text().replace("[train]\n", "[train]\nbatch_size = 8\n"))
    with pytest.raises(ConfigError) as error:
        load_experiment(experiment, [override])
    assert f"{error.value}\n".startswith(python)
    assert cli.main(["run", str(experiment), "--no-progress", "--no-plots", "--set", override]) == 2
    assert capsys.readouterr().err.startswith(f"spikecl: error: {flags}")


def test_a_setting_the_experiment_ignores_is_reset_by_the_callers_override(experiment, capsys):
    with pytest.raises(ConfigError, match=re.escape("(remove it from the file, or overrides=['data.pool=1'])") + "$"):
        load_experiment(experiment, ["data.pool=2"])
    assert cli.main(["run", str(experiment), "--no-progress", "--no-plots", "--set", "data.pool=2"]) == 2
    assert capsys.readouterr().err.endswith("(remove it from the file, or --set data.pool=1)\n")


def test_a_dataset_of_ones_own_is_registered_by_an_import_in_python_and_a_plugin_on_the_command_line(experiment,
                                                                                                      capsys):
    """The command line loads what registers a dataset with ``--plugin``; Python imports it."""
    experiment.write_text(experiment.read_text().replace('"digits"', '"blobs"'))
    with pytest.raises(ConfigError, match=r"dvs_gesture; one of your own: import the module that registers it first$"):
        load_experiment(experiment)
    assert cli.main(["run", str(experiment), "--no-progress"]) == 2
    assert capsys.readouterr().err.endswith("dvs_gesture; one of your own: register it in a file passed with "
                                            "--plugin\n")


def test_a_plugin_that_fails_is_named_as_the_caller_named_it(tmp_path, capsys):
    """``load_plugin`` from Python names the plugin it was given, not a ``--plugin`` flag nobody passed."""
    from spikecl.plugins import load_plugin

    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no')\n")
    with pytest.raises(ConfigError, match=rf"^plugin {re.escape(str(broken))} failed on import: RuntimeError: no$"):
        load_plugin(str(broken))
    with pytest.raises(ConfigError, match=r"^plugin no_such_package\.methods: no such module"):
        load_plugin("no_such_package.methods")
    assert cli.main(["report", str(tmp_path), "--plugin", str(broken)]) == 2
    assert f"--plugin {broken} failed on import: RuntimeError: no" in capsys.readouterr().err


def test_a_trained_networks_dataset_not_registered_names_an_import_in_python_and_a_plugin_on_the_command_line():
    from spikecl.config import check_known_dataset

    with pytest.raises(ConfigError, match=r"^data.dataset 'blobs' is not registered; import the module that "
                                          r"registers it first \(spikecl.data.register_dataset\)$"):
        check_known_dataset("blobs")                     # what export_file, deploy and stream_samples call first
    with command_line(), pytest.raises(ConfigError, match=r"^data.dataset 'blobs' is not registered; pass the "
                                                        r"--plugin that registers it$"):
        check_known_dataset("blobs")


def test_a_kind_of_ones_own_is_registered_by_register_kind_in_python_and_a_plugin_on_the_command_line(experiment,
                                                                                                   capsys):
    from spikecl.experiment_kind import run_file

    experiment.write_text('kind = "rate_curve"\n' + experiment.read_text())
    with pytest.raises(ConfigError, match=r"\(a kind of your own: register it first with "
                                          r"spikecl.experiment_kind.register_kind\)$"):
        run_file(experiment)
    assert cli.main(["run", str(experiment), "--no-progress"]) == 2
    assert capsys.readouterr().err.endswith("(a kind of your own: pass the file that registers it with --plugin)\n")


def test_a_sparsey_coder_names_register_dataset_in_python_and_plugin_on_the_command_line(tmp_path, capsys):
    from spikecl.experiment_kind import load

    source = tmp_path / "sparsey.toml"
    source.write_text(f'output_dir = "{tmp_path}"\n' + (ROOT / "models" / "sparsey_digits.toml").read_text())
    with pytest.raises(ConfigError, match=r"or a dataset of one's own registered with "
                                          r"spikecl.data.register_dataset\)$"):
        load(source, ['data.dataset="cifar10"'])
    assert cli.main(["run", str(source), "--no-progress", "--set", 'data.dataset="cifar10"']) == 2
    assert capsys.readouterr().err.endswith("or a dataset of one's own registered by a --plugin)\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_a_device_without_cuda_is_changed_by_the_config_key_in_python_and_the_flag_on_the_command_line(experiment,
                                                                                                      capsys):
    from spikecl.experiment_kind import run_file

    with pytest.raises(ConfigError, match=r"^device: cuda requested but torch.cuda.is_available\(\) is false; use "
                                          r'device = "cpu"$'):
        run_file(experiment, ['device="cuda"'], progress=False, plots=False)
    assert cli.main(["run", str(experiment), "--no-progress", "--no-plots", "--device", "cuda"]) == 2
    assert capsys.readouterr().err == ("spikecl: error: device: cuda requested but torch.cuda.is_available() is "
                                       "false; use --device cpu\n")


def test_the_launcher_names_its_nproc_argument_in_python_and_the_flag_on_the_command_line(tmp_path, monkeypatch):
    """``launch(0, ...)`` (the command line's --nproc stops at 1 before it) and ``launch`` under torchrun."""
    from spikecl.atomic import check_output
    from spikecl.launcher import launch

    with pytest.raises(ConfigError, match=r"^nproc: expected at least 1 process, got 0$"):
        launch(0, check_output, str(tmp_path / "net.h5"))
    with command_line(), pytest.raises(ConfigError, match=r"^--nproc: expected at least 1 process, got 0$"):
        launch(0, check_output, str(tmp_path / "net.h5"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"^launch cannot be used inside a process group that is already launched "
                                          r"\(torchrun\)$"):
        launch(2, check_output, str(tmp_path / "net.h5"))
    with command_line(), pytest.raises(ConfigError, match=r"^--nproc cannot be used inside a process group that is "
                                                        r"already launched \(torchrun\)$"):
        launch(2, check_output, str(tmp_path / "net.h5"))


def test_a_results_file_of_a_kind_not_registered_names_register_kind_in_python_and_plugin_on_the_command_line(
        tmp_path, capsys):
    import h5py

    from spikecl.errors import ResultsError
    from spikecl.report import collect

    path = tmp_path / "rates.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(schema="spikecl-results", schema_version=1, kind="rate_curve")
        for group in ("config", "environment"):
            f.create_group(group).attrs["json"] = "{}"
        f.create_group("metrics")
    with pytest.raises(ResultsError, match=r"a kind this spikecl does not know \(upgrade spikecl, or register the "
                                           r"kind first with spikecl.experiment_kind.register_kind\)$"):
        collect(path, note=lambda _: None)
    assert cli.main(["report", str(path), "--no-plots"]) == 2
    assert capsys.readouterr().err.endswith("a kind this spikecl does not know (upgrade spikecl, or pass the file that "
                                            "registers the kind with --plugin)\n")
