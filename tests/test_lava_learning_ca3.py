"""The CA3 memory on Lava's learning engine (floating-point simulation, .venv-lava) runs the recorded functional
experiment exactly like the torch stepper: every population's spikes, every answer, the final plastic weights.

The learning graph is written on the main side (``spikecl export models/ca3_cam.toml``, torch stepper = reference)
and deployed with ``spikecl.export.pipeline.deploy`` (Lava as a subprocess), as ``spikecl deploy FILE --backend
lava-sim`` does.
"""

import json
import subprocess

import h5py
import numpy as np
import pytest

from spikecl.errors import ConfigError, DataError, ShapeError, SpikeCLError
from spikecl.export import ca3_graph, lava_client
from spikecl.memory.params import CA3Params
from spikecl.memory.recordings import RECORDED, load_recording, mismatches
from spikecl.memory.schedule import events

from lava_support import ROOT, checkout_env, require_environment
from hdf5_files import edited

pytestmark = pytest.mark.lava

NAME = "exp1_functional"
#: the functional experiment's answers (the recording's): learns echo, recalls by cue give the content, recalls by
#: content the cues (OR-matching); cue 3 is relearned at operation 6
ANSWERS = [(0, 1, 8, 9), (1, 5, 6), (4, 5, 6), (0, 1, 8, 9), (3, 4), (0, 3), (1, 3, 4, 8), (1, 3, 4, 8), (4,)]


def write(path, name=NAME, **params):
    from spikecl.memory.lava_graph import write_ca3_graph

    C, M, ops, spacing = RECORDED[name]
    return write_ca3_graph(path, ops, C, M, CA3Params(**params), spacing_ms=spacing)


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    """``spikecl export models/ca3_cam.toml -o exp1.h5``: the functional experiment of the published model."""
    from spikecl.cli import main

    from lava_support import ROOT

    path = tmp_path_factory.mktemp("ca3") / "exp1.h5"
    assert main(["export", str(ROOT / "models" / "ca3_cam.toml"), "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def lava_env():
    require_environment(".venv-lava", "lava")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", checkout_env()["PYTHONPATH"])
        yield


@pytest.fixture(scope="module")
def deployed(graph_file, lava_env):
    from spikecl.export.pipeline import deploy

    return deploy(graph_file, "lava-sim")


def test_reference_in_the_file_is_the_spinnaker_recording(graph_file):
    """The stored torch-stepper run (what Lava is compared with) reproduces the SpiNNaker recording."""
    graph = ca3_graph.read_ca3_graph(graph_file)
    simulated = {p: events(r) for p, r in graph.reference["spikes"].items()}
    assert not mismatches(load_recording(NAME), simulated)
    assert graph.steps == 90 and graph.readout["expected"] == ANSWERS


def test_lava_spikes_equal_the_torch_stepper_in_every_population(deployed, graph_file):
    reference = ca3_graph.read_ca3_graph(graph_file).reference["spikes"]
    cells = [p for p in reference if not p.startswith("IN")]
    assert len(cells) == 10 and set(deployed["spike_match"]) == set(cells)
    assert deployed["spike_match"] == {p: 1.0 for p in cells}
    for pop in cells:
        assert np.array_equal(deployed["spikes"][pop], reference[pop]), pop
    assert sum(int(deployed["spikes"][p].sum()) for p in cells) > 200       # the run is busy, not silent


def test_lava_answers_equal_the_torch_stepper_and_the_ideal_memory(deployed):
    assert deployed["answers"] == deployed["reference_answers"] == ANSWERS
    assert all(deployed["answers_equal"]) and len(deployed["answers_equal"]) == 9
    assert deployed["recall_accuracy"] == deployed["reference_recall_accuracy"] == 1.0


def test_lava_learns_the_plastic_weights_of_the_torch_stepper(deployed, graph_file):
    reference = ca3_graph.read_ca3_graph(graph_file).reference["weights"]
    for key, w in reference.items():
        np.testing.assert_allclose(deployed["weights"][key], w, rtol=0, atol=1e-12, err_msg=key)
        assert deployed["weight_max_abs_error_nA"][key] <= 1e-12
        assert w.max() == pytest.approx(6.0) and (w > 3).sum() >= 10          # memories were stored
    assert deployed["weights"]["cue_to_content"].shape == (5, 10)
    assert deployed["weights"]["content_to_cue"].shape == (10, 5)
    assert deployed["weights"]["cue_to_content"][3, [5, 6]].max() < 0.2     # relearning cue 3 forgot bits 5, 6


def test_deploy_reports_timing_and_prints(deployed):
    import io

    from spikecl.export.pipeline import print_deploy

    assert deployed["learning_graph"] == "ca3" and deployed["backend"] == "lava-sim"
    assert 0 < deployed["ms_per_step"] < 1000 and deployed["start_s"] > 0 and deployed["reference_ms_per_step"] > 0
    out = io.StringIO()
    print_deploy(deployed, out)
    text = out.getvalue()
    assert "answers equal to the reference: 9/9" in text and "recall accuracy 1.000" in text
    assert "OUTcont 100.0%" in text


def test_lava_stock_learning_order_misses_forgetting(graph_file, lava_env):
    """Measured difference of Lava's stock engine order (weights sent before the step's learning, one saturated
    update per step): the relearned cue 3 keeps its forgotten bits 5 and 6; the weights stay in [w_min, w_max]."""
    report = ca3_graph.deploy(graph_file, "lava-sim", stock_engine=True)
    mismatched = {p: 1 - m for p, m in report["spike_match"].items() if m < 1}
    assert set(mismatched) == {"CA3contCueRecall", "CA3contCond", "CA3contContRecall", "CA3MergeCont", "OUTcont"}
    assert report["answers"][7] == (1, 3, 4, 5, 6, 8) and report["recall_accuracy"] == pytest.approx(0.8)
    assert report["weight_max_abs_error_nA"]["cue_to_content"] == pytest.approx(6.0)
    for key, w in report["weights"].items():             # one saturated update per step, still in [w_min, w_max]
        assert w.min() >= 0.0 and w.max() <= 6.0, key


def test_lava_runs_the_pooled_k2_variant_exactly(tmp_path, lava_env):
    """Linear pooled inhibition and 2-of-n matching (two more populations, a scaled content -> cue path)."""
    path = write(tmp_path / "variant.h5", inhibition="pool", match_k=2)
    report = ca3_graph.deploy(path, "lava-sim")
    assert len(report["spike_match"]) == 12 and set(report["spike_match"].values()) == {1.0}
    assert all(report["answers_equal"]) and max(report["weight_max_abs_error_nA"].values()) <= 1e-12


def test_lava_runs_an_asymmetric_stdp_window_exactly(tmp_path, lava_env):
    """A- != A+ and tau- != tau+ (the published rule has them equal): Lava's post trace takes the depression's own
    amplitude and time constant, which both halves of the split update read, as the torch stepper does."""
    path = write(tmp_path / "asymmetric.h5", a_minus_nA=3.0, tau_minus_ms=6.0)
    report = ca3_graph.deploy(path, "lava-sim")
    assert set(report["spike_match"].values()) == {1.0}
    assert max(report["weight_max_abs_error_nA"].values()) <= 1e-12


def run_script(tmp_path, code: str, *args) -> str:
    """What ``code``, run as a script in the Lava environment with ``args``, prints (it must exit 0)."""
    script = tmp_path / "script.py"
    script.write_text(code)
    done = subprocess.run([str(ROOT / ".venv-lava" / "bin" / "python"), str(script), *map(str, args)],
                          capture_output=True, text=True, env=checkout_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


SAVE_SCRIPT = r"""
import sys
import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.source import RingBuffer
from spikecl_lava.learning.ca3_stdp import BoundedLearningDense, stdp_rule

pre, post = RingBuffer(data=np.array([[1.0, 0, 0]])), RingBuffer(data=np.array([[0, 0, 1.0]]))
conn = BoundedLearningDense(weights=np.ones((1, 1)), learning_rule=stdp_rule(2.0, 1.0, 3.0, 3.0), w_min=0.0,
                            w_max=6.0, steps=3, save=sys.argv[1])
pre.s_out.connect(conn.s_in)
post.s_out.connect(conn.s_in_bap)
try:
    pre.run(condition=RunSteps(num_steps=3), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    live = conn.weights.get()
finally:
    pre.stop()
print(np.load(sys.argv[1]).item(), live.item())
"""


def test_plastic_weights_are_saved_after_the_learning_of_the_last_step(tmp_path, lava_env):
    """BoundedLearningDense saves its weights after its last step's learning: a pre spike at step 1 and a post spike
    seen at step 3 (the last) potentiate by A+ exp(-2 / tau+), and the saved weight is the live one."""
    saved, live = map(float, run_script(tmp_path, SAVE_SCRIPT, tmp_path / "w.npy").split())
    assert saved == live == pytest.approx(1 + 2 * np.exp(-2 / 3), rel=1e-9)


SPLIT_SCRIPT = r"""
import sys
import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.source import RingBuffer
from spikecl_lava.learning.ca3_stdp import BoundedLearningDense, stdp_rule

pre, post = RingBuffer(data=np.array([[1.0, 0, 1.0]])), RingBuffer(data=np.array([[0, 0, 1.0]]))
conns = [BoundedLearningDense(weights=np.full((1, 1), 6.0), learning_rule=stdp_rule(2.0, 1.0, 3.0, 3.0), w_min=0.0,
                              w_max=6.0, steps=3, save=f"{sys.argv[1]}/w{split}.npy", split_update=split)
         for split in (True, False)]
for conn in conns:
    pre.s_out.connect(conn.s_in)
    post.s_out.connect(conn.s_in_bap)
try:
    pre.run(condition=RunSteps(num_steps=3), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
finally:
    pre.stop()
print(*(np.load(f"{sys.argv[1]}/w{split}.npy").item() for split in (True, False)))
"""


def test_split_update_saturates_the_potentiation_before_the_depression(tmp_path, lava_env):
    """A synapse at w_max = 6 with pre spikes at steps 1 and 3 and a post seen at step 3: split_update (the
    stepper) clips the potentiation 2 exp(-2/3) at 6, then depresses by A- = 1 to 5; the engine's single update
    (6 + 1.03 - 1, clipped once) stays at 6."""
    split, single = map(float, run_script(tmp_path, SPLIT_SCRIPT, tmp_path).split())
    assert split == pytest.approx(5.0, abs=1e-12) and single == pytest.approx(6.0, abs=1e-12)


@pytest.mark.parametrize("params", [{"v_reset_mV": -56.0}, {"tau_refrac_ms": 0.0, "learn_hold_steps": 1}],
                         ids=["reset-above-threshold", "no-refractory-step"])
def test_lava_cells_reset_and_hold_like_the_stepper(tmp_path, lava_env, params):
    """A reset above threshold (only the refractory hold keeps a cell from firing again) and no refractory step
    (only the spike's own reset brings the membrane down): spikecl's cells on Lava give the stepper's spikes."""
    report = ca3_graph.deploy(write(tmp_path / "cells.h5", **params), "lava-sim")
    assert set(report["spike_match"].values()) == {1.0} and all(report["answers_equal"])


@pytest.mark.parametrize("cells", ["custom", "lif"])
def test_lava_runs_a_two_step_stdp_post_lag_exactly(tmp_path, lava_env, cells):
    """stdp_post_lag_ms = 2: the custom cells' lagged s_out_bap, or the relay LIF behind a DelayDense, shows the
    rule each post spike two steps late, as the torch stepper does (the published lag is one step)."""
    report = ca3_graph.deploy(write(tmp_path / "lag2.h5", stdp_post_lag_ms=2.0), "lava-sim", cells=cells)
    assert set(report["spike_match"].values()) == {1.0}
    assert max(report["weight_max_abs_error_nA"].values()) < 1e-12


FIXED_RULE_SCRIPT = r"""
import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.source import RingBuffer
from spikecl_lava.learning.ca3_fixed import fixed_models, fixed_plastic

rule = dict(w_max_nA=6.0, w_min_nA=0.0, a_plus_nA=6.0, a_minus_nA=0.6, tau_plus_ms=3.0, tau_minus_ms=5.0)
# three pairs on the diagonal: pre and seen post on one step, pre 2 steps before the post, post 2 steps before the pre
pre = RingBuffer(data=np.array([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], float))
post = RingBuffer(data=np.array([[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]], float))
conn, unit = fixed_plastic(np.full((3, 3), 1.2), rule, "pairs")
pre.s_out.connect(conn.s_in)
post.s_out.connect(conn.s_in_bap)
try:
    pre.run(condition=RunSteps(num_steps=5),
            run_cfg=Loihi2SimCfg(select_tag="floating_pt", exception_proc_model_map=fixed_models()))
    w = conn.weights.get()
finally:
    pre.stop()
print(*(np.diag(w) * unit), *fixed_plastic(np.array([[5.99]]), rule, "rounded")[0].weights.init.ravel())
"""


def test_fixed_point_rule_pairs_spikes_like_the_float_rule(tmp_path, lava_env):
    """Lava's fixed-point rule (8-bit weights of 6/255 nA, 7-bit traces) on one synapse per pairing, against the float
    rule: a same-step pair only depresses (by A-: the x0 y0 term takes the step's own pre impulse off), pre 2 steps
    before post potentiates by A+ exp(-2/tau+), post 2 steps before pre depresses by A- exp(-2/tau-), each within
    the stochastic rounding of a few weight units; initial weights round to the nearest unit (5.99 nA -> 255)."""
    *learned, rounded = map(float, run_script(tmp_path, FIXED_RULE_SCRIPT).split())
    expected = [1.2 - 0.6, 1.2 + 6.0 * np.exp(-2 / 3), 1.2 - 0.6 * np.exp(-2 / 5)]
    np.testing.assert_allclose(learned, expected, rtol=0, atol=0.1)
    assert rounded == 255


REFUSALS_SCRIPT = r"""
from pathlib import Path
from spikecl_lava.learning.ca3 import build
from spikecl_lava.learning.ca3_fixed import fixed_rule
from spikecl_lava.learning.ca3_lif import lif_population

rule = dict(w_max_nA=6.0, w_min_nA=0.0, a_plus_nA=6.0, a_minus_nA=6.0, tau_plus_ms=3.0, tau_minus_ms=3.0)
net = dict(v_rest_mV=-65.0, v_reset_mV=-65.0, refractory_steps=2, syn_decay=0.5)
for case in (lambda: fixed_rule({**rule, "a_plus_nA": 3.0}), lambda: fixed_rule({**rule, "w_min_nA": 0.5}),
             lambda: fixed_rule({**rule, "tau_minus_ms": 2.5}), lambda: fixed_rule({**rule, "a_minus_nA": 7.0}),
             lambda: lif_population("p", {}, {**net, "v_reset_mV": -60.0}, 0, 5, "r.npy"),
             lambda: lif_population("p", {}, {**net, "refractory_steps": 1}, 0, 5, "r.npy"),
             lambda: build(None, Path("."), cells="lif", learning="fixed"),
             lambda: fixed_rule({**rule, "w_max_nA": 0.7, "a_plus_nA": 0.7, "a_minus_nA": 0.35})):
    try:
        case()
        print("accepted")
    except Exception as exc:
        print(type(exc).__name__, exc)
"""


def test_lava_side_refuses_what_its_engines_cannot_run(tmp_path, lava_env):
    """The Lava side's own checks, which a direct ``python -m spikecl_lava.learning.ca3`` run relies on: the
    fixed-point rule needs A+ = w_max, w_min = 0, whole-ms time constants and A- <= w_max; LIFRefractory needs
    v_reset = v_rest and a refractory step; fixed-point learning takes the custom cells only. An A+ = w_max whose
    impulse rounds above the full one (w_max = 0.7) is taken."""
    lines = run_script(tmp_path, REFUSALS_SCRIPT).splitlines()
    assert len(lines) == 8 and all(line.startswith("ConfigError ") for line in lines[:7]), lines
    assert lines[7] == "accepted"                      # 127.5 * 0.7 / 0.7 rounds above 127.5: capped, not refused
    assert "a_plus_nA = w_max_nA" in lines[0] and all("w_min = 0" in line for line in lines[1:4])
    assert all("v_reset = v_rest" in line for line in lines[4:6]) and "custom cells only" in lines[6]


def test_lava_lif_refractory_cells_match_the_stepper(graph_file, lava_env, capsys):
    """Lava's own LIFRefractory (gains folded into the weights, a relay LIF for the late post spikes) gives the
    same spikes; the weights agree up to float rounding (the products are formed in another order). Run as
    ``spikecl deploy FILE --backend lava-sim --cells lif``."""
    from spikecl.cli import main
    from spikecl.export.pipeline import deploy

    assert main(["deploy", str(graph_file), "--backend", "lava-sim", "--cells", "lif"]) == 0
    text = capsys.readouterr().out
    assert "answers equal to the reference: 9/9" in text and "recall accuracy 1.000" in text
    assert "cells lif, learning float)" in text and "OUTcont 100.0%" in text
    report = deploy(graph_file, "lava-sim", options={"cells": "lif"})
    assert report["cells"] == "lif" and set(report["spike_match"].values()) == {1.0}
    assert report["answers"] == ANSWERS and report["recall_accuracy"] == 1.0
    assert max(report["weight_max_abs_error_nA"].values()) < 1e-12


def test_deploy_options_reach_only_the_graphs_that_take_them(graph_file, tmp_path, capsys):
    """--cells, --learning and --stock-engine are options of a CA3 learning graph run in Lava: the reference
    backend (which reads the stored run, so would ignore them), another learning graph or a frozen network refuses
    them in one line."""
    from spikecl.cli import main

    for flag in (["--cells", "lif"], ["--learning", "fixed"], ["--stock-engine"]):
        assert main(["deploy", str(graph_file), *flag]) == 2
        assert capsys.readouterr().err == (f"spikecl: error: {flag[0]} applies to --backend lava-sim; the reference "
                                           "backend reads the run stored in the graph\n")
    assert main(["deploy", str(graph_file)]) == 0 and "recall accuracy 1.000" in capsys.readouterr().out
    for flag, named in ((["--cells", "lif"], "--cells lif"), (["--stock-engine"], "--stock-engine")):
        assert main(["deploy", str(graph_file), "--backend", "lava-sim", "--learning", "fixed", *flag]) == 2
        assert capsys.readouterr().err == (f"spikecl: error: --learning fixed: {named} does not apply (Lava's "
                                           "fixed-point engine runs with spikecl's custom cells, in its own stock "
                                           "order)\n")                  # refused before Lava starts
    lateral, frozen = tmp_path / "lateral.h5", tmp_path / "frozen.h5"
    with h5py.File(lateral, "w") as f:
        f.attrs["learning_graph"] = "hlop-lateral"
    h5py.File(frozen, "w").close()
    for path, flag, words in ((lateral, ["--stock-engine"], "--stock-engine does not apply to hlop-lateral"),
                              (frozen, ["--cells", "lif"], "--cells applies to learning graphs only")):
        assert main(["deploy", str(path), *flag]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1


def test_run_lava_passes_every_engine_option_to_the_lava_side(graph_file, monkeypatch):
    """--stock-engine, --cells and --learning reach the Lava side's command line as asked (the report echoes the
    asked options, so a dropped one would go unseen)."""
    seen = []

    def stop(cmd, *args, **kwargs):
        seen.append(cmd)
        raise RuntimeError("stopped before Lava")

    monkeypatch.setattr(lava_client, "lava_python", lambda: "python")
    monkeypatch.setattr(lava_client, "run_side", stop)
    with pytest.raises(RuntimeError, match="stopped before Lava"):
        ca3_graph.run_lava(graph_file, stock_engine=True, cells="lif", learning="fixed")
    assert seen[0][-5:] == ["--stock-engine", "--cells", "lif", "--learning", "fixed"]


def test_lava_fixed_point_learning_engine_keeps_the_answers(graph_file, lava_env):
    """Lava's fixed-point engine (8-bit weights, 7-bit traces, stochastic rounding, the stock transmission order;
    seeded, so runs repeat) under the float cells: measured, not exact."""
    report = ca3_graph.deploy(graph_file, "lava-sim", learning="fixed")
    assert report["learning"] == "fixed" and "fixed-point learning" in report["lava_backend"]
    assert report["answers"] == ANSWERS and report["recall_accuracy"] == 1.0
    mismatched = {p for p, m in report["spike_match"].items() if m < 1}
    assert mismatched == {"CA3contCueRecall", "CA3contCond", "CA3contContRecall", "CA3MergeCont", "OUTcont"}
    assert min(report["spike_match"].values()) > 0.94
    for key, w in report["weights"].items():                # 8-bit: multiples of 6/255 nA, at most 6 nA
        units = w * 255 / 6
        np.testing.assert_allclose(units, np.round(units), atol=1e-9, err_msg=key)
        assert 4 < w.max() <= 6 and 1 < report["weight_max_abs_error_nA"][key] < 3


def test_reference_backend_decodes_the_stored_run(graph_file):
    report = ca3_graph.deploy(graph_file, "reference")
    assert report["answers"] == ANSWERS and report["recall_accuracy"] == 1.0


def _corrupt(src, dst, edit):
    import shutil

    shutil.copy(src, dst)
    with edited(dst) as f:
        edit(f)
    return dst


def _set_nan(f):
    w = f["network/static/00/weights"][()]
    w[0, 0] = np.nan
    f["network/static/00/weights"][...] = w


def _reshape_inputs(f):
    cue = f["inputs/INcue"][()]
    del f["inputs/INcue"]
    f.create_dataset("inputs/INcue", data=cue[:, :3])


@pytest.mark.parametrize("edit, error, words", [
    (lambda f: f.__delitem__("inputs/INcont"), DataError, "missing dataset 'inputs/INcont'"),
    (_set_nan, DataError, "NaN"),
    (_reshape_inputs, ShapeError, "inputs/INcue: shape (90, 3), expected (90, 5)"),
    (lambda f: f.attrs.__setitem__("version", 99), DataError, "format version 99"),
    (lambda f: f["network/plastic/cue_to_content"].attrs.__delitem__("w_max_nA"), DataError, "'w_max_nA'"),
    (lambda f: f["network/static/00"].attrs.__setitem__("target", "nowhere"), DataError, "unknown population"),
    (lambda f: f["readout"].attrs.__setitem__("kinds", json.dumps(["learn"])), ShapeError, "differ in length"),
    (lambda f: f.attrs.__setitem__("n_cues", 4), ShapeError, "do not fit n_cues = 4"),
    (lambda f: f.attrs.__setitem__("learning_graph", "hlop"), DataError, "not a CA3 learning graph"),
    (lambda f: f["readout/content_step"].__setitem__(3, 5000), DataError,
     "/readout/content_step: step 5000 outside 0..89"),
    (lambda f: f["readout/forgotten_step"].__setitem__(0, -2), DataError, "/readout/forgotten_step: step -2"),
    (lambda f: f["readout"].attrs.__setitem__("kinds", json.dumps(["forget"] * 9)), DataError,
     "operation kind 'forget'"),
    (lambda f: f.__delitem__("network/plastic/cue_to_content"), DataError,
     "missing the plastic projection '/network/plastic/cue_to_content'"),
])
def test_bad_graph_files_are_refused_in_one_line(graph_file, tmp_path, edit, error, words):
    bad = _corrupt(graph_file, tmp_path / "bad.h5", edit)
    with pytest.raises(error) as info:
        ca3_graph.read_ca3_graph(bad)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_bad_requests_are_refused(graph_file, tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="not an HDF5 file"):
        ca3_graph.read_ca3_graph(tmp_path / "text.h5")
    with pytest.raises(DataError, match="no such file"):
        ca3_graph.read_ca3_graph(tmp_path / "missing.h5")
    with pytest.raises(ConfigError, match="--backend"):
        ca3_graph.deploy(graph_file, "loihi")
    with pytest.raises(ConfigError, match="cells 'izhikevich'"):
        ca3_graph.deploy(graph_file, "lava-sim", cells="izhikevich")
    with pytest.raises(ConfigError, match="learning 'analog'"):
        ca3_graph.deploy(graph_file, "lava-sim", learning="analog")
    with pytest.raises(ConfigError, match="read_only_recall"):
        write(tmp_path / "ro.h5", read_only_recall=True)
    nan = _corrupt(graph_file, tmp_path / "noref.h5", lambda f: f.__delitem__("reference"))
    with pytest.raises(DataError, match="no reference run"):
        ca3_graph.deploy(nan, "reference")


def test_lava_runner_refuses_a_bad_file_in_one_line(graph_file, tmp_path, lava_env):
    import subprocess

    from lava_support import ROOT

    bad = _corrupt(graph_file, tmp_path / "bad.h5", _set_nan)
    done = subprocess.run([str(ROOT / ".venv-lava" / "bin" / "python"), "-m", "spikecl_lava.learning.ca3", str(bad),
                           "-o", str(tmp_path / "out.h5")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "NaN" in done.stderr
    assert issubclass(DataError, SpikeCLError) and not (tmp_path / "out.h5").exists()
