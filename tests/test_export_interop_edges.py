"""Export edges between spikecl and the programs it hands files to: a large readout bias, the Lava subprocess
failing to start or finish, an export onto its own source, options that would be ignored, runner inputs that are
groups, a damaged num_steps, and netx keys lava-dl runs that spikecl's runner does not read."""

import dataclasses
import os
import re
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
from hdf5_files import edited, tamper
from lava_support import ROOT
from test_export_edges import MLP_CONFIG, mlp_state, refused, small_spec, tampered_is_refused

from spikecl.cli import main
from spikecl.errors import ConfigError, DataError, DependencyError, ExportError, ResultsError
from spikecl.export import fixed_point as fp
from spikecl.export import pipeline
from spikecl.export.float_model import float_logits
from spikecl.export.inputs import encode
from spikecl.export.netx import read_netx, write_netx
from spikecl.export.quantize import QuantConfig, quantize
from spikecl.export.spec import LayerSpec, NetworkSpec, spec_from_state
from spikecl.io import write_run
from spikecl.remedies import command_line


def one_line(capsys, code=2) -> str:
    """The CLI's stderr, asserted to be one line with exit code ``code``."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# --- 1. a readout bias too large for the readout's scale ---
def biased_readout_spec(bias=(3.0, -3.0, 2.9, -2.9)):
    rng = np.random.default_rng(0)
    hidden = LayerSpec("hidden0", rng.normal(0, 0.4, (20, 10)), None, 0.9, 1.0, "zero")
    readout = LayerSpec("readout", rng.normal(0, 0.05, (4, 20)), np.array(bias), 0.9, 1.0, "none")
    return NetworkSpec((hidden, readout), 4, "direct", 4)


def test_a_large_readout_bias_lowers_the_readout_scale_instead_of_refusing(tmp_path):
    spec = biased_readout_spec()
    net = quantize(spec)                                       # was: "bias 6.78675 needs ...; lower the headroom"
    assert np.abs(net.readout.bias_mant).max() == 4095 and net.readout.bias_exp == 6
    x = np.random.default_rng(1).random((300, 10))
    inputs = encode(x, net)
    fixed = fp.logits(net, fp.simulate(net, inputs).readout_v)
    expected = float_logits(spec, inputs / net.input_scale)
    assert np.mean(np.argmax(fixed, 1) == np.argmax(expected, 1)) > 0.95
    assert read_netx(write_netx(tmp_path / "net.h5", net)).readout.scale == net.readout.scale   # lava-dl compatible


def test_a_readout_bias_that_fits_leaves_the_readout_as_it_was():
    """The cap binds only for a bias that does not fit: the same readout with a small bias keeps its scale."""
    spec = biased_readout_spec((0.3, -0.3, 0.2, -0.2))
    unbiased = dataclasses.replace(spec, layers=(spec.layers[0], dataclasses.replace(spec.readout, bias=None)))
    for cfg in (QuantConfig(), QuantConfig(exponents=True), QuantConfig(readout_range=40.0)):
        a, b = quantize(spec, cfg).readout, quantize(unbiased, cfg).readout
        assert (a.scale, a.weight_exp) == (b.scale, b.weight_exp) and np.array_equal(a.weight, b.weight)


@pytest.mark.parametrize("cfg, bias, words", [
    (QuantConfig(exponents=True), 1e6, "every weight rounds to 0 even at weight_exp -8 (the readout bias 1e+06 is "
                                       "too large beside the weights)"),
    (QuantConfig(), 1e4, "every weight rounds to 0 without a weight exponent (the readout bias 10000 is too large "
                         "beside the weights)"),
])
def test_a_readout_bias_too_large_for_any_scale_names_the_trained_bias(cfg, bias, words):
    """With weight exponents the mantissas shrink below weight_exp -8 for a large bias (a bias of 10000 beside
    weights of 0.05 exports, the bias mantissa 4095); one for which every weight rounds to 0 is refused."""
    with pytest.raises(ExportError, match=re.escape(words)) as info:
        quantize(biased_readout_spec((bias, -3.0, 2.0, 1.0)), cfg)
    message = str(info.value)
    assert "headroom" not in message and "retrain with a smaller readout bias" in message and "\n" not in message


def test_a_capped_readout_runs_on_lava_exactly_as_the_reference(tmp_path):
    """The readout whose scale the bias capped (bias mantissas at 4095) is still Lava = reference, bit for bit."""
    from lava_support import require_environment, run_and_compare

    require_environment(".venv-lava", "lava")
    net = quantize(biased_readout_spec())
    assert np.abs(net.readout.bias_mant).max() == 4095
    run_and_compare(tmp_path, net, np.random.default_rng(2).random((12, 10)))


# --- 2. the Lava subprocess cannot start or does not finish ---
def lava_runs(tmp_path):
    """Each way spikecl starts a Lava subprocess: (name, call)."""
    from spikecl.export import ca3_graph, hlop_graph, lava_client

    net = write_netx(tmp_path / "net.h5", quantize(small_spec()), overwrite=True)
    inputs = np.zeros((6, 1, 6), dtype=np.int32)
    return {"netx": lambda: lava_client.run_lava(net, inputs),
            "ca3": lambda: ca3_graph.run_lava(tmp_path / "ca3.h5"),
            "hlop": lambda: hlop_graph.run_lava(tmp_path / "hlop.h5")}


@pytest.mark.parametrize("kind", ["netx", "ca3", "hlop"])
@pytest.mark.parametrize("target", ["folder", "not executable"])
def test_a_lava_python_that_is_not_an_executable_file_is_one_line(tmp_path, monkeypatch, kind, target):
    python = tmp_path / "python"
    python.mkdir() if target == "folder" else python.write_text("#!/bin/sh\n")
    monkeypatch.setenv("SPIKECL_LAVA_PYTHON", str(python))
    with pytest.raises(DependencyError, match=re.escape(f"SPIKECL_LAVA_PYTHON = {python} is not an executable file")):
        lava_runs(tmp_path)[kind]()


@pytest.mark.parametrize("kind, remedy", [("netx", "run fewer samples (spikecl deploy --samples)"),
                                          ("ca3", "export a shorter experiment"),
                                          ("hlop", "write the graph with fewer samples or epochs")])
def test_a_lava_run_past_its_timeout_is_one_line(tmp_path, monkeypatch, kind, remedy):
    from spikecl.export import lava_client

    communicate = subprocess.Popen.communicate

    def too_slow(self, input=None, timeout=None):
        if timeout is None:                                      # stop_group's: the real one
            return communicate(self, input)
        raise subprocess.TimeoutExpired(self.args, timeout)

    monkeypatch.setenv("SPIKECL_LAVA_PYTHON", sys.executable)
    monkeypatch.setattr(lava_client, "SIDE_GRACE_S", 1.0)
    monkeypatch.setattr(subprocess.Popen, "communicate", too_slow)
    with pytest.raises(ResultsError, match=r"did not finish within \d+ s and was stopped; " + re.escape(remedy)):
        lava_runs(tmp_path)[kind]()


def test_side_processes_run_this_checkouts_lava_side_whatever_the_callers_pythonpath(tmp_path, monkeypatch):
    """The netx runner, the CA3 and the HLOP learners all start through run_side: another checkout's spikecl_lava
    on the caller's PYTHONPATH (or behind the Lava environment's editable install) is not what they run."""
    from pathlib import Path

    from spikecl.export.lava_client import run_side

    other = tmp_path / "other" / "spikecl_lava"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise SystemExit('error: the other checkout')")
    monkeypatch.setenv("PYTHONPATH", str(other.parent))
    hardware = Path(__file__).resolve().parents[1] / "hardware"
    run_side([sys.executable, "-c", f"import spikecl_lava, sys; sys.exit(not spikecl_lava.__file__.startswith("
                                    f"{str(hardware)!r}))"], "the Lava runner", 60, "-")


def test_run_side_names_what_could_not_start_or_finish(tmp_path):
    from spikecl.export.lava_client import run_side

    with pytest.raises(DependencyError, match="the Lava runner could not start .*missing"):
        run_side([str(tmp_path / "missing"), "-c", "pass"], "the Lava runner", 10, "-")
    with pytest.raises(ResultsError, match=r"the Lava runner did not finish within 0.5 s and was stopped; fewer"):
        run_side([sys.executable, "-c", "import time; time.sleep(30)"], "the Lava runner", 0.5, "fewer")
    with pytest.raises(ResultsError, match="the Lava runner failed: SystemExit: boom"):
        run_side([sys.executable, "-c", "raise SystemExit('SystemExit: boom')"], "the Lava runner", 30, "-")
    raising = "raise ImportError('Unable to import required dependencies:\\nnumpy: from its source directory;\\n" \
              "    relaunch your python interpreter from there.')"
    with pytest.raises(ResultsError, match="^the Lava runner failed: ImportError: Unable to import required "
                                           "dependencies:$"):       # the exception's line, not its message's last
        run_side([sys.executable, "-c", raising], "the Lava runner", 30, "-")
    with pytest.raises(ResultsError, match=r"^the Lava runner failed: \S+ exited with status 3 and printed nothing$"):
        run_side([sys.executable, "-c", "raise SystemExit(3)"], "the Lava runner", 30, "-")
    with pytest.raises(ResultsError, match="^the Lava runner failed: .* was stopped by SIGKILL$"):
        run_side([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], "the Lava runner", 30, "-")
    rt = signal.SIGRTMIN + 6                                  # a real-time signal has no name
    with pytest.raises(ResultsError, match=f"^the Lava runner failed: .* was stopped by signal {int(rt)}$"):
        run_side([sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(rt)})"], "the Lava runner", 30, "-")
    with pytest.raises(ResultsError, match=r"No module named 'spikecl_lava' \(\S+ lacks spikecl's Lava side: "
                                           r"install a spikecl checkout's hardware/ into it\)$"):
        run_side([sys.executable, "-I", "-c", "import spikecl_lava"], "the Lava runner", 30, "-")
    from spikecl.export.lava_client import failure_line

    assert failure_line("ValueError: logged while loading\nspikecl-lava: error: net.h5: no layers\n") == \
        "spikecl-lava: error: net.h5: no layers"                  # the side's own one-line error first
    assert failure_line("ValueError: logged\nerror: g.h5: the graph holds no cues\n") == \
        "error: g.h5: the graph holds no cues"                    # one without its program's name too


def hlop_graph_file(tmp_path):
    from spikecl.export import hlop_graph as hg

    activity = np.random.default_rng(0).standard_normal((20, 6)) * np.linspace(3, 0.3, 6)
    return hg.write_graph(tmp_path / "hlop.h5", hg.make_graph(activity, 2, epochs=1))


@pytest.mark.parametrize("graph", ["netx", "hlop"])
def test_deploy_with_a_lava_python_that_is_a_folder_is_one_line(tmp_path, monkeypatch, capsys, graph):
    path = write_netx(tmp_path / "net.h5", quantize(small_spec())) if graph == "netx" else hlop_graph_file(tmp_path)
    monkeypatch.setenv("SPIKECL_LAVA_PYTHON", str(tmp_path))
    assert main(["deploy", str(path), "--backend", "lava-sim"]) == 2
    assert "SPIKECL_LAVA_PYTHON" in one_line(capsys)


# --- 3. an export onto its own source ---
@pytest.mark.parametrize("alias", ["same", "relative", "hard link"])
def test_export_refuses_to_overwrite_its_source(tmp_path, monkeypatch, capsys, alias):
    from spikecl.export import pipeline

    source = tmp_path / "run.h5"
    source.write_bytes(b"the training results")
    monkeypatch.setattr(pipeline, "load_trained", lambda path: small_spec())        # an exportable network
    output = {"same": source, "relative": tmp_path / "sub" / ".." / "run.h5", "hard link": tmp_path / "link.h5"}[alias]
    (tmp_path / "sub").mkdir()
    if alias == "hard link":
        os.link(source, output)
    with pytest.raises(ConfigError, match=rf"^output {re.escape(str(output))} is the source file .*; name another "
                                          r"file \(overwrite=True would replace the trained network with the "
                                          r"export\)$"):
        pipeline.export_file(source, output, overwrite=True)
    for fmt in ("netx", "nir"):
        assert main(["export", str(source), "-o", str(output), "--format", fmt, "--overwrite"]) == 2
        assert one_line(capsys).endswith("; name another file (--overwrite would replace the trained network with the "
                                         "export)")
    toml = tmp_path / "ca3.toml"
    toml.write_text("# an experiment")
    assert main(["export", str(toml), "-o", str(toml), "--overwrite"]) == 2
    assert "is the source file" in one_line(capsys)
    assert source.read_bytes() == b"the training results" and toml.read_text() == "# an experiment"


# --- 4. options that would be ignored ---
@pytest.mark.parametrize("encoder", ["latency", "poisson"])
def test_input_bits_are_refused_for_binary_spike_encoders(tmp_path, monkeypatch, capsys, encoder):
    from spikecl.export import pipeline

    spec = small_spec(encoder=encoder)
    assert quantize(spec).input_bits == 0
    with pytest.raises(ExportError, match=rf"^QuantConfig\.input_bits 3: graded input belongs to the 'direct' "
                                          rf"encoder; this network's encoder '{encoder}' presents binary spikes \(drop "
                                          r"QuantConfig\.input_bits\)$"):
        quantize(spec, QuantConfig(input_bits=3))
    monkeypatch.setattr(pipeline, "load_trained", lambda source: spec)
    monkeypatch.setattr(pipeline, "stream_samples", lambda *a, **k: pytest.fail("samples drawn before the check"))
    (tmp_path / "run.h5").write_bytes(b"x")
    assert main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "net.h5"), "--input-bits", "3"]) == 2
    assert "--input-bits 3: graded input belongs to the 'direct' encoder" in one_line(capsys)
    assert not (tmp_path / "net.h5").exists()
    assert quantize(small_spec(), QuantConfig(input_bits=3)).input_bits == 3      # direct: as given
    assert quantize(small_spec()).input_bits == 8                                   # direct: the default


@pytest.mark.parametrize("flag", [["--samples", "5"], ["--data-dir", "data"]])
def test_learning_graphs_refuse_samples_and_data_dir(tmp_path, capsys, flag):
    for kind in ("ca3", "hlop-lateral"):
        path = tmp_path / f"{kind}.h5"
        with h5py.File(path, "w") as f:
            f.attrs["learning_graph"] = kind
        assert main(["deploy", str(path), *flag]) == 2
        assert f"{flag[0]} applies to exported networks; {path} is a {kind} learning graph" in one_line(capsys)
        keyword = flag[0][2:].replace("-", "_")                     # deploy's keyword: samples, data_dir
        with pytest.raises(ConfigError, match=f"^{keyword} applies to exported networks; "):
            pipeline.deploy(path, **{keyword: int(flag[1]) if keyword == "samples" else flag[1]})


def test_data_dir_is_refused_where_no_data_is_read(tmp_path, capsys):
    (tmp_path / "run.h5").write_bytes(b"x")
    (tmp_path / "ca3.toml").write_text("")
    assert main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "n.nir"), "--format", "nir",
                 "--data-dir", "data"]) == 2
    assert "--data-dir applies to netx exports" in one_line(capsys)
    assert main(["export", str(tmp_path / "ca3.toml"), "-o", str(tmp_path / "g.h5"), "--data-dir", "data"]) == 2
    assert "--data-dir applies to trained networks" in one_line(capsys)


@pytest.mark.parametrize("dataset", ["digits", "mnist5k"])
def test_data_dir_is_refused_for_a_network_trained_on_a_bundled_dataset(dataset):
    """export and deploy rebuild the training stream; a dataset that comes with its package reads no folder."""
    from spikecl.errors import ConfigError
    from spikecl.export.samples import trained_stream

    config = {"data": {"dataset": dataset}, "stream": {}}
    with pytest.raises(ConfigError, match=f"^data_dir: the network was trained on {dataset}, which comes with its "
                                          "package and is read from no folder; drop data_dir$"):
        trained_stream(config, data_dir="/nonexistent")
    with command_line(), pytest.raises(ConfigError, match=f"^--data-dir: the network was trained on {dataset}, "
                                                        "which comes with its package and is read from no folder; "
                                                        "drop --data-dir$"):
        trained_stream(config, data_dir="/nonexistent")


def test_data_dir_is_refused_by_export_and_deploy_even_when_no_samples_are_drawn(zero_reset_run, tmp_path):
    from spikecl.errors import ConfigError
    from spikecl.export.pipeline import deploy, export_file

    message = "^data_dir: the network was trained on digits, which comes with its package"
    with pytest.raises(ConfigError, match=message):
        export_file(zero_reset_run[0], tmp_path / "n.h5", samples=0, calibration_samples=0, data_dir="/nowhere")
    export_file(zero_reset_run[0], tmp_path / "n.h5", samples=0, calibration_samples=0)
    with pytest.raises(ConfigError, match=message):
        deploy(tmp_path / "n.h5", samples=1, data_dir="/nowhere")


def test_export_and_deploy_refuse_other_dataset_files_than_the_network_trained_on(tmp_path):
    """A network trained on MNIST-format files in one folder: export and deploy may read them from a moved copy, but
    other files (another set in the same format) are a one-line DataError, not an accuracy on data it never saw."""
    import shutil

    from test_datasets import tiny_mnist

    from spikecl.config import experiment_from_dict
    from spikecl.run_files import checkpoint_path
    from spikecl.continual.runner import ContinualRun
    from spikecl.export.pipeline import deploy, export_file

    tiny_mnist(tmp_path / "a", n_train=200, n_test=100, seed=0)
    tiny_mnist(tmp_path / "b", n_train=200, n_test=100, seed=1)
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    cfg = experiment_from_dict({
        "name": "files", "seeds": [0], "data": {"dataset": "mnist", "data_dir": str(tmp_path / "a")},
        "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 1, "first_task_identity": True},
        "network": {"hidden": [8], "num_steps": 2, "reset": "zero"}, "train": {"epochs": 1, "batch_size": 50},
        "strategy": {"methods": ["finetune"]}})
    run, results = ContinualRun(cfg, "finetune", 0), tmp_path / "finetune-seed0.h5"
    run.execute(results, progress_bar=False)
    run.save_checkpoint(checkpoint_path(results))
    other = "the network was trained on other mnist files (their images or labels differ from those in "
    for source in (results, checkpoint_path(results)):
        out = tmp_path / f"{source.suffix[1:]}.h5"
        with pytest.raises(DataError, match=re.escape(other + str(tmp_path / "b"))):
            export_file(source, out, samples=10, calibration_samples=0, max_drop=None, data_dir=str(tmp_path / "b"))
        export_file(source, out, samples=10, calibration_samples=0, max_drop=None, data_dir=str(tmp_path / "moved"))
        with pytest.raises(DataError, match=re.escape(other + str(tmp_path / "b")) + ".*point data_dir at"):
            deploy(out, samples=5, data_dir=str(tmp_path / "b"))
        with command_line(), pytest.raises(DataError, match=r"now\); point --data-dir at the files it trained on$"):
            deploy(out, samples=5, data_dir=str(tmp_path / "b"))
        assert deploy(out, samples=5, data_dir=str(tmp_path / "moved"))["samples"] == 5


def test_the_deploy_help_says_which_files_take_samples(capsys):
    with pytest.raises(SystemExit):
        main(["deploy", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("evaluation samples to run (test split, or validation under data.eval_split; default 200; lava-sim "
            "stops after 1800 s); exported networks only") in help_text


# --- 5. runner inputs that are HDF5 groups ---
@pytest.mark.parametrize("key", ["inputs", "labels", "heads"])
def test_runner_inputs_that_are_groups_are_one_line(tmp_path, monkeypatch, capsys, key):
    from spikecl.export.lava_client import write_inputs

    net = quantize(small_spec(n_heads=2))
    write_netx(tmp_path / "net.h5", net)
    write_inputs(tmp_path / "in.h5", encode(np.random.default_rng(0).random((4, 6)), net), np.arange(4) % 3,
                 np.arange(4) % 2)
    with edited(tmp_path / "in.h5") as f:
        del f[key]
        f.create_group(key)
    monkeypatch.syspath_prepend(str(ROOT / "hardware"))
    from spikecl_lava.runner import main as runner_main

    code = runner_main([str(tmp_path / "net.h5"), "--inputs", str(tmp_path / "in.h5"), "-o", str(tmp_path / "r.h5")])
    err = capsys.readouterr().err
    assert code == 2 and f"in.h5: {key} is an HDF5 group, not a dataset of integers" in err and err.count("\n") == 1
    assert not (tmp_path / "r.h5").exists()


# --- 6. a damaged num_steps or encoder in the trained config ---
@pytest.mark.parametrize("key, value, message", [
    ("num_steps", 0, "network.num_steps = 0 must be an integer in 1..1000000"),
    ("num_steps", 4.7, "network.num_steps = 4.7 must be an integer"),
    ("num_steps", 4.0, "network.num_steps = 4.0 must be an integer"),
    ("num_steps", "4", "network.num_steps = '4' must be an integer"),
    ("num_steps", True, "network.num_steps = True must be an integer"),
    ("num_steps", 10**7, "network.num_steps = 10000000 must be an integer in 1..1000000"),
    ("encoder", "rate", "network.encoder = 'rate' is not one of direct, poisson, latency, events"),
    ("encoder", 3, "network.encoder = 3 is not one of"),
])
def test_a_damaged_num_steps_or_encoder_is_one_line(key, value, message):
    config = {"network": {**MLP_CONFIG["network"], key: value}}
    with pytest.raises(ExportError, match=re.escape(message)):
        spec_from_state(mlp_state(), config)
    assert spec_from_state(mlp_state(), MLP_CONFIG).num_steps == 4


@pytest.mark.parametrize("change, message", [
    (dict(num_steps=0), "num_steps = 0 must be an integer in 1..1000000"),
    (dict(num_steps=np.float64(4.7)), "num_steps = 4.7 must be an integer"),
    (dict(encoder="rate"), "encoder 'rate' is not one of direct, poisson, latency, events"),
])
def test_a_network_spec_checks_num_steps_and_encoder(change, message):
    with pytest.raises(ExportError, match=re.escape(message)):
        dataclasses.replace(small_spec(), **change)


# --- 7. netx keys lava-dl runs but spikecl's runner does not read ---
@pytest.mark.parametrize("where, value, message", [
    ("layer/1/bias", np.full(8, 7, np.int32), "layer 1: bias differs from spikecl's bias_mant << bias_exp"),
    ("layer/2/bias", np.zeros(3, np.int32), "layer 2: bias differs from spikecl's bias_mant"),
    ("layer/1/bias", np.bytes_("12"), "layer 1: bias holds |S2 values, not integers"),
    ("layer/1/bias", np.full(9, 7, np.int32), "layer 1: bias has shape (9,); expected one of [(8,)]"),
    ("layer/1/bias", np.full(8, 7.0), "layer 1: bias holds float64 values"),
    ("layer/1/neuron/type", np.bytes_("SDNN"), "layer 1: neuron/type 'SDNN' is not 'CUBA'"),
    ("layer/1/neuron/type", np.int64(1), "layer 1: type = 1 is not a string"),
    ("layer/2/type", np.bytes_("dense_rec"), "layer 2: layer type 'dense_rec' is not supported"),
    ("layer/0/type", np.bytes_("dense"), "layer 0: type 'dense' is not 'input'"),
])
def test_netx_keys_that_disagree_with_spikecls_copy_are_refused(tmp_path, where, value, message):
    tampered_is_refused(tmp_path, where, value, message)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.__delitem__("layer/1/bias"), "layer 1: bias is missing"),
    (lambda f: (f.__delitem__("layer/1/bias"), f["layer/1"].create_group("bias")), "layer 1: bias holds no values"),
    (lambda f: f["layer"].create_group("3").create_dataset("type", data=np.bytes_("dense")),
     "layer 3 follows the readout"),
    # entries lava-dl's netx runs and spikecl's runner does not: synaptic delays, message bits (a hang in lava-dl),
    # a neuron on the input layer
    (lambda f: f["layer/1"].create_dataset("delay", data=np.full(8, 3, np.int32)),
     "layer 1: entry 'delay' is not one spikecl writes (lava-dl's netx would run it, spikecl's runner not)"),
    (lambda f: f["layer/2/neuron"].create_dataset("messageBits", data=np.int64(3)),
     "layer 2: neuron: entry 'messageBits' is not one spikecl writes"),
    (lambda f: f["layer/0"].create_group("neuron"), "layer 0: entry 'neuron' is not one spikecl writes"),
    (lambda f: (f.__delitem__("layer/1/weight"), f["layer/1"].create_dataset(
        "weight", data=np.full((8, 6), 4294967294, np.int64))),
     "layer 1: weight is not a matrix of 8-bit Loihi mantissas (values up to 4294967294)"),
])
def test_netx_entries_missing_or_added_are_refused(tmp_path, edit, message):
    path = write_netx(tmp_path / "net.h5", quantize(small_spec()))
    with edited(path) as f:
        edit(f)
    refused(path, message)


def cnn_net(per_neuron=False):
    pytest.importorskip("torch")
    from test_export import cnn_spec, small_cnn

    net = quantize(cnn_spec(small_cnn(3)))
    if per_neuron:                       # a bias that varies over the grid: stored on netx's [W, H, C] grid
        first = net.layers[0]
        bias = first.bias_mant // 2 + np.arange(first.n_out, dtype=np.int32) % 3
        net = dataclasses.replace(net, layers=(dataclasses.replace(first, bias_mant=bias), *net.layers[1:]))
    return net


@pytest.mark.parametrize("per_neuron", [False, True])
def test_conv_biases_are_checked_per_channel_and_on_the_grid(tmp_path, per_neuron):
    net = cnn_net(per_neuron)
    path = write_netx(tmp_path / "cnn.h5", net)
    back = read_netx(path)
    assert all(np.array_equal(a.bias_mant, b.bias_mant) for a, b in zip(net.layers, back.layers))
    with edited(path) as f:
        bias = f["layer/1/bias"]
        assert bias.ndim == (3 if per_neuron else 1)
        bias[(0,) * bias.ndim] += 1
    refused(path, "layer 1: bias differs from spikecl's bias_mant << bias_exp")


def misflattened(tmp_path, cnn: bool):
    """A network file without spikecl's CRC (as another tool writes it) whose netx ``flatten`` entry is missing
    (``cnn``: its dense readout reads the last conv's 3-D output directly) or added between an MLP's two dense
    layers. lava-dl's netx loader refuses both (tests/test_lavadl.py)."""
    from spikecl.export.netx import CRC

    path = write_netx(tmp_path / ("cnn.h5" if cnn else "mlp.h5"), cnn_net() if cnn else quantize(small_spec()))
    with edited(path) as f:
        if cnn:                                          # input, conv, conv, flatten, dense -> without the flatten
            del f["layer/3"]
            f["layer"].move("4", "3")
        else:                                            # input, dense, dense -> input, dense, flatten, dense
            f["layer"].move("2", "3")
            f["layer"].create_group("2").create_dataset("type", data=np.bytes_("flatten"))
        extras = f[f"spikecl/layer/{2 if cnn else 1}"]
        del extras["netx"]
        extras.create_dataset("netx", data=np.int64(3))
        del f["spikecl"].attrs[CRC]
    return path


@pytest.mark.parametrize("cnn, message", [
    (True, "layer 3: a dense layer after the conv of layer 2 needs a 'flatten' entry between them"),
    (False, "layer 2: a 'flatten' between a dense and a dense layer (it may stand only between a conv and the dense"),
])
def test_a_missing_or_misplaced_flatten_is_refused_as_lava_dl_refuses_it(tmp_path, cnn, message):
    refused(misflattened(tmp_path, cnn), message)


@pytest.mark.parametrize("key, value", [("dilation", np.array([2, 2])), ("groups", np.int64(2))])
def test_conv_dilation_and_groups_must_be_what_spikecl_runs(tmp_path, key, value):
    path = write_netx(tmp_path / "cnn.h5", cnn_net())
    tamper(path, f"layer/1/{key}", value)
    refused(path, "layer 1: conv dilation or groups is not 1")


@pytest.mark.parametrize("cnn, edit, message", [
    (False, lambda f: f.__delitem__("layer/1/shape"),
     "layer 1: dense layer lacks shape (lava-dl's netx could not load"),
    (True, lambda f: f.__delitem__("layer/1/dilation"), "layer 1: conv layer lacks dilation"),
    (True, lambda f: f.__delitem__("layer/1/groups"), "layer 1: conv layer lacks groups"),
    (False, lambda f: f.__delitem__("layer/1/neuron"), "layer 1: dense layer lacks neuron (lava-dl's netx would give "
                                                        "it a default neuron, not the one spikecl's runner runs)"),
    (True, lambda f: (f.__delitem__("layer/0/shape"), f["layer/0"].create_dataset("shape", data=np.array([8, 8, 1]))),
     "layer 0: shape (8, 8, 1) is not the network's input (1, 8, 8) (lava-dl's netx would build another input grid)"),
    (False, lambda f: (f.__delitem__("layer/0/shape"), f["layer/0"].create_dataset("shape", data=np.array([1, 1, 6]))),
     "layer 0: shape (1, 1, 6) is not the network's input (6,); the file is damaged"),
])
def test_netx_files_lava_dls_loader_could_not_load_are_refused(tmp_path, cnn, edit, message):
    """Entries lava-dl's netx reads without a default, and the input shape it builds the network's input from: a
    file spikecl's runner would run but lava-dl's loader not (a traceback there) is refused on reading."""
    path = write_netx(tmp_path / "net.h5", cnn_net() if cnn else quantize(small_spec()))
    with edited(path) as f:
        edit(f)
    refused(path, message)



def test_a_schema_version_1_file_written_by_spikecl_still_reads_and_runs():
    """tests/data/netx/schema_v1.h5 came from spikecl's version 1 writer (extras in the netx groups, neuron
    ``messageBits = 0``): the reader's allow-list of netx entries admits what that writer wrote, and the network
    runs on the fixed-point reference."""
    path = ROOT / "tests" / "data" / "netx" / "schema_v1.h5"
    with h5py.File(path, "r") as f:
        assert f["spikecl"].attrs["schema_version"] == 1 and "messageBits" in f["layer/1/neuron"]
    net = read_netx(path)
    assert [layer.weight.shape for layer in net.layers] == [(20, 12), (15, 20), (4, 15)]
    inputs = encode(np.random.default_rng(0).random((5, 12)), net)
    assert fp.predict(net, inputs).shape == (5,)


# --- 8. what the export command writes and says ---
def test_export_notes_a_network_that_lava_dls_loader_would_not_run_exactly(tmp_path, monkeypatch, capsys):
    """A netx export whose 2-bit weights lava-dl's loader would rescale is written for spikecl's runner only
    (lava_dl = False) and the command says so in a note naming the layer; the 8-bit export gets no note."""
    monkeypatch.setattr(pipeline, "load_trained", lambda path: small_spec(bias=0.0))     # no data: no samples
    (tmp_path / "run.h5").write_bytes(b"x")
    note = "note: it runs on spikecl's runner only, not in lava-dl's netx loader (layer hidden0: lava-dl's"
    for bits, lava_dl in (("2", False), ("8", True)):
        out = tmp_path / f"net{bits}.h5"
        assert main(["export", str(tmp_path / "run.h5"), "-o", str(out), "--weight-bits", bits]) == 0
        printed = capsys.readouterr().out
        with h5py.File(out) as f:
            assert bool(f["spikecl"].attrs["lava_dl"]) is lava_dl
        assert (note in printed) is not lava_dl, printed


def test_a_ca3_learning_graph_export_refuses_an_existing_file_unless_overwrite(tmp_path, capsys):
    """`spikecl export ca3.toml -o FILE` keeps an existing FILE (one line, exit 2) and replaces it with --overwrite."""
    out = tmp_path / "ca3.h5"
    out.write_bytes(b"keep me")
    args = ["export", str(ROOT / "models" / "ca3_cam.toml"), "-o", str(out)]
    assert main(args) == 2
    assert f"{out} exists; pass --overwrite" in one_line(capsys) and out.read_bytes() == b"keep me"
    assert main([*args, "--overwrite"]) == 0 and h5py.is_hdf5(out)


def test_a_ca3_file_whose_functional_part_is_off_still_exports_its_functional_graph(tmp_path, capsys):
    """The learning graph is the functional experiment: export turns it on (and the stress grid off) whatever the
    file says, so a stress-only experiment file exports like the default one."""
    stress_only = tmp_path / "stress.toml"
    stress_only.write_text('kind = "ca3"\nname = "s"\n[functional]\nenabled = false\n')
    assert main(["export", str(stress_only), "-o", str(tmp_path / "g.h5")]) == 0
    assert "ca3 learning graph" in capsys.readouterr().out and h5py.is_hdf5(tmp_path / "g.h5")


def test_a_ca3_experiment_file_named_in_capitals_exports_as_a_learning_graph(tmp_path, capsys):
    """The .toml suffix is matched in any case, as .h5 and .ckpt are: CA3.TOML exports its learning graph."""
    source = tmp_path / "CA3.TOML"
    source.write_text((ROOT / "models" / "ca3_cam.toml").read_text())
    assert main(["export", str(source), "-o", str(tmp_path / "g.h5")]) == 0
    assert "ca3 learning graph" in capsys.readouterr().out


@pytest.mark.parametrize("source, words", [
    ("continual.toml", "is a continual experiment file; export takes what it trained: run it (spikecl run "),
    ("sparsey.toml", "is a 'sparsey' experiment file, which has no exported form; export takes a continual run's"),
    ("rate_curve.toml", "kind: 'rate_curve' is not an experiment kind; choose from ['ca3', 'continual', 'sparsey'] "
                        "(a kind of your own: pass the file that registers it with --plugin)"),
    ("ca3.h5", "holds a 'ca3' run; export takes a continual run's trained network (a CA3 memory exports from its "
               "experiment file: spikecl export models/ca3_cam.toml"),
    ("sweep.h5", "holds a 'sweep' run; export takes a continual run's trained network (export one of the sweep's"),
    ("net.h5", "is an exported network already; run it with: spikecl deploy "),
    ("graph.h5", "is a ca3 learning graph, exported already; run it with: spikecl deploy "),
    ("net.nir", "is a NIR graph, exported already (the float network); run it with "
                "spikecl.export.nir_readers.run_nir")])
def test_export_of_what_it_does_not_take_names_the_next_step(tmp_path, capsys, source, words):
    """An experiment file of another kind than ca3, another kind's results file or an exported network: one line
    naming what export takes and the command to run instead."""
    path = tmp_path / source
    if source.endswith(".toml"):
        path.write_text(f'kind = "{source.removesuffix(".toml")}"\n')
    elif source == "net.h5":
        write_netx(path, quantize(small_spec(widths=(6, 3))))
    elif source == "graph.h5":
        assert main(["export", str(ROOT / "models" / "ca3_cam.toml"), "-o", str(path)]) == 0
        assert main(["export", str(ROOT / "models" / "ca3_cam.toml"), "-o", str(path.with_suffix(".nir"))]) == 2
        assert "a .nir name for a CA3 learning graph, which is HDF5" in one_line(capsys)
    elif source == "net.nir":
        pytest.importorskip("nir")
        from spikecl.export.nir_io import write_nir

        write_nir(path, small_spec(widths=(6, 3)))
    else:
        write_run(path, source.removesuffix(".h5"), {})
    assert main(["export", str(path), "-o", str(tmp_path / "out.h5")]) == 2
    assert words in one_line(capsys) and not (tmp_path / "out.h5").exists()



def test_a_side_process_killed_after_its_grace_leaves_its_temporary_files_in_the_callers_folder(tmp_path,
                                                                                              monkeypatch):
    """The Lava runner, stopped and killed after its grace (it outlived SIGINT), left its spikes folder in /tmp at
    every interruption: a side process's temporary files go to a folder its caller removes."""
    import sys

    from spikecl.export import lava_client

    monkeypatch.setattr(lava_client, "SIDE_GRACE_S", 0.2)
    script = ("import signal, tempfile, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              "tempfile.mkdtemp(prefix='spikecl-lava-spikes-')\ntime.sleep(60)\n")
    with pytest.raises(ResultsError, match="the side did not finish within 1 s and was stopped; wait"):
        lava_client.run_side([sys.executable, "-c", script], "the side", 1.0, "wait", tmpdir=tmp_path)
    assert [p.name.startswith("spikecl-lava-spikes-") for p in tmp_path.iterdir()] == [True]   # made here


def test_a_network_option_given_with_an_experiment_file_is_refused_for_any_kind(tmp_path, capsys):
    """It said "a CA3 experiment file exports as a Lava learning graph" of a sparsey file too."""
    path = tmp_path / "sparsey.toml"
    path.write_text('kind = "sparsey"\n')
    assert main(["export", str(path), "-o", str(tmp_path / "x.h5"), "--format", "nir"]) == 2
    assert one_line(capsys).endswith("--format applies to trained networks; an experiment file exports as its kind "
                                     "declares (a CA3 one as a Lava learning graph, HDF5) and takes no such option")
