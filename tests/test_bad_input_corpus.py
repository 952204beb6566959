"""The error contract over a corpus of bad inputs, as a new user makes them.

Every case runs the real command line in this process and must end the same way: exit code 2, exactly one line on
stderr starting ``spikecl: error:`` and naming the problem, no traceback, and no file left behind in the working
folder. Categories: configs (every section of every experiment kind), command-line arguments, datasets (IDX, CIFAR,
miniImageNet), results files, checkpoints, export and deploy, sweeps. A seeded fuzz test mutates config values and
file bytes under the same contract.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

from spikecl.cli import main
from spikecl.io import write_run

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

# A continual run small enough that a case which wrongly starts training still ends in seconds.
CONTINUAL = """name = "tiny"
seeds = [0]
output_dir = "results"
[data]
dataset = "digits"
[stream]
kind = "split"
scenario = "class"
n_tasks = 2
classes_per_task = 2
train_per_task = 40
test_per_task = 20
[network]
hidden = [8]
num_steps = 2
[train]
epochs = 1
batch_size = 20
[strategy]
methods = ["finetune"]
"""
CA3 = """kind = "ca3"
name = "tiny-ca3"
seeds = [0]
[functional]
enabled = false
[stress]
sizes = [[10, 10]]
densities = [0.3]
spacings_ms = [7]
variants = ["published"]
fragment_sizes = [1]
queries_per_size = 2
"""
SPARSEY = """kind = "sparsey"
name = "tiny-sparsey"
seeds = [0]
[data]
dataset = "digits"
[coder]
image_shape = [8, 8]
threshold = 0.3
layout = "grid"
grid = [2, 2]
patch = [4, 4]
[eval]
n_pairs = 20
pair_items = 10
capacity_points = [20]
random_capacity_points = [10]
cue_items = 10
sequences = 0
spiking_items = 0
train_items = 100
test_items = 50
"""
SWEEP = """base = "tiny.toml"
name = "tiny-sweep"
methods = ["finetune"]
seeds = [0]
num_cpus = 1
[grid]
"train.lr" = [0.05]
"""
BASES = {"continual": CONTINUAL, "ca3": CA3, "sparsey": SPARSEY}


class Case(NamedTuple):
    category: str
    id: str
    build: Callable[[Path], list[str]]          # given the working folder, writes what it needs, returns argv
    message: str                               # a fragment the one-line error must contain


CASES: list[Case] = []


def case(category: str, id: str, message: str):
    def register(build):
        CASES.append(Case(category, id, build, message))
        return build
    return register


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def run_with(kind: str, *sets: str, extra: tuple[str, ...] = ()) -> Callable[[Path], list[str]]:
    """Build: the kind's tiny experiment file, run with ``--set`` overrides."""
    def build(tmp: Path) -> list[str]:
        path = write(tmp, f"{kind}.toml", BASES[kind])
        argv = ["run", str(path), "--no-progress", "--no-plots"]
        for s in sets:
            argv += ["--set", s]
        return argv + list(extra)
    return build


# --- configs: every section of every kind --------------------------------------------------------------------------
CONFIG_CASES = {
    "continual": [
        ("name=\"../outside\"", "not a plain file name"), ("name=\"\"", "not a plain file name"),
        ("name=\"/abs\"", "not a plain file name"), ("seeds=[]", "at least one seed"),
        ("seeds=[-1]", "below the minimum 0"), ("seeds=[1,1]", "appears more than once"),
        ("stream.n_tasks=20 stream.classes_per_task=0", "stream.n_tasks: 20 split tasks need at least 20 classes; "
                                                         "digits has 10"),
        ("seeds=[100000000000000000000000]", "64-bit integer"), ("seeds=[4294967296]", "above the maximum"),
        ("seeds=\"zero\"", "expected a list"), ("seeds=[1.5]", "expected an integer"),
        ("device=\"tpu\"", "choose one of"), ("output_dir=5", "expected a string"),
        ("kind=\"nope\"", "kind"), ("colour=1", "unknown key 'colour'"),
        ("data.dataset=\"nope\"", "data.dataset"), ("data.validation=-0.1", "below the minimum"),
        ("data.validation=1.5", "above the maximum"), ("data.eval_split=\"x\"", "data.eval_split"),
        ("data.eval_split=\"validation\"", "needs a validation split"), ("data.foo=1", "unknown key 'data.foo'"),
        ("data=3", "data: expected a table"), ("data.vary_split=\"yes\"", "expected true or false"),
        ("stream.kind=\"x\"", "stream.kind"), ("stream.scenario=\"x\"", "stream.scenario"),
        ("stream.n_tasks=0", "below the minimum 1"), ("stream.n_tasks=50", "stream"),
        ("stream.classes_per_task=-2", "below the minimum 0"), ("stream.input_code=\"x\"", "stream.input_code"),
        ("stream.code_units=1", "below the minimum 2"), ("stream.code_sparsity=0.9", "above the maximum"),
        ("stream.max_angle_deg=720", "above the maximum"), ("stream.foo=1", "unknown key 'stream.foo'"),
        ("stream.kind=\"permuted\"", "stream.classes_per_task: applies only to split streams"),
        ("stream.first_task_identity=true", "stream.first_task_identity: applies only to permuted streams"),
        ("stream.max_angle_deg=90", "stream.max_angle_deg: applies only to rotated streams"),
        ("stream.code_units=100", "stream.code_units: applies only to stream.input_code = \"flyhash\""),
        ("data.pool=2", "data.pool: applies only to event datasets"),
        ("data.time_bins=8", "data.time_bins: applies only to event datasets"),
        ("network.channels=[8]", "network.channels: applies only to network.kind = \"cnn\""),
        ("network.batch_norm=false", "network.batch_norm: applies only to network.kind = \"cnn\""),
        ("network.kind=\"cnn\" network.hidden=[5]", "network.hidden: applies only to network.kind = \"mlp\""),
        ("train.optimizer=\"adam\" train.momentum=0.5", "train.momentum: applies only to train.optimizer = \"sgd\""),
        ("train.eval_samples=50", "train.eval_samples: applies only to continual evaluation"),
        ("network.num_steps=1 network.beta=0.5", "network.beta: applies only to networks of 2 or more time steps"),
        ("network.num_steps=1 network.reset=\"zero\"", "network.reset: applies only to networks of 2 or more"),
        ("network.kind=\"x\"", "network.kind"), ("network.hidden=[0]", "below the minimum 1"),
        ("network.hidden=[-5]", "below the minimum 1"), ("network.hidden=[]", "at least one hidden layer"),
        ("network.kind=\"cnn\" network.channels=[]", "network.channels: a CNN needs at least one convolution layer"),
        ("network.hidden=\"big\"", "expected a list"), ("network.hidden=[1000000000000]", "above the maximum"),
        ("network.num_steps=0", "below the minimum 1"), ("network.encoder=\"x\"", "network.encoder"),
        ("network.beta=1.5", "above the maximum"), ("network.threshold=0", "below the minimum"),
        ("network.reset=\"x\"", "network.reset"), ("network.init_gain=-1", "below the minimum"),
        ("network.bias=\"yes\"", "expected true or false"), ("network.foo=1", "unknown key 'network.foo'"),
        ("train.trainer=\"x\"", "train.trainer"), ("train.epochs=0", "below the minimum 1"),
        ("train.batch_size=0", "below the minimum 1"), ("train.optimizer=\"x\"", "train.optimizer"),
        ("train.lr=-1", "below the minimum"), ("train.lr=1e308", "above the maximum"),
        ("train.lr=nan", "finite number"), ("train.lr=inf", "finite number"), ("train.momentum=2", "above"),
        ("train.weight_decay=5", "train.weight_decay"), ("train.eval_every=-1", "below the minimum 0"),
        ("train.eval_samples=0", "below the minimum 1"), ("train.lr=\"fast\"", "expected a number"),
        ("train.foo=1", "unknown key 'train.foo'"), ("train.precision=\"float16\"", "train.precision"),
        ("train.precision=\"bfloat16\" network.engine=\"snntorch\"", "the float32 reference"),
        ("strategy.methods=[]", "at least one method"), ("strategy.methods=[\"nope\"]", "nope"),
        ("strategy.methods=[\"ewc+ewc\"]", "ewc+ewc"), ("strategy.methods=[\"finetune\",\"finetune\"]",
                                                        "more than once"),
        ("strategy.methods=[\"ewc\"] strategy.ewc.lam=-1", "lam"),
        ("strategy.methods=[\"ewc\"] strategy.ewc.foo=1", "foo"),
        ("strategy.ewc.lamb=1.0", "unknown key 'strategy.ewc.lamb'"),             # ewc's table, ewc not run
        ("strategy.ewc=3", "strategy.ewc = 3: strategy.<method> is a table of that method's options, set one by one "
                           "(e.g. strategy.ewc.lam = 100)"),
        ("strategy.method=[\"ewc\"]", "unknown key 'strategy.method'; allowed keys: methods, options; did you mean"),
        ("strategy.methods=[\"hlop\"] strategy.ewc.lam=5.0", "--set strategy.ewc.lam: no run of this experiment uses "
                                                           "ewc (strategy.methods: hlop), so it would change nothing"),
        ("strategy.ewc.lam=-1", "strategy.ewc.lam: -1.0 is below the minimum"),
        ("strategy.nope.x=1", "strategy.nope: options for an unknown method"),
        ("strategy.methods=[\"replay\"] strategy.replay.per_class=0", "per_class"),
        ("strategy.methods=[\"gpm\"] strategy.gpm.thresholds=[2.0]", "thresholds"),
        ("strategy.methods=[\"hlop\"] strategy.hlop.neurons=[[-1]]", "neurons"),
        ("strategy.replay.batch_size=1099511627776", "strategy.replay.batch_size: 1099511627776 is above the maximum"),
        ("strategy.hlop.lr=0.5",
         "strategy.hlop.lr: applies only to step = 'normalised'; leave it at its default (1.5)"),
        ("strategy.hlop.step=\"normalised\" strategy.hlop.lr=2.0",
         "strategy.hlop.lr: 2.0 is outside the open range (0.0, 2.0); it must lie strictly between them"),
        ("strategy.hlop.step=\"normalised\" strategy.hlop.lr=0.0", "strategy.hlop.lr: 0.0 is outside the open range"),
        ("strategy.hlop.lateral_scale=10.0", "strategy.hlop.lateral_scale: applies only to lateral_levels >= 1"),
        ("strategy.hlop.clamp=0.0", "strategy.hlop.clamp: 0.0 is below the minimum 1e-12"),
        ("strategy.hlop.step=\"normalised\" strategy.hlop.fixed_lr=[0.5]",
         "strategy.hlop.fixed_lr: applies only to step = 'fixed'"),
        ("strategy.hlop.budget=\"energy\" strategy.hlop.neurons=[[5]]",
         "strategy.hlop.neurons: applies only to budget = 'schedule'"),
        ("strategy.hlop.energy=[0.5]", "strategy.hlop.energy: applies only to budget = 'energy'"),
        ("strategy.replay.mode=\"mixed\" strategy.replay.phase_lr=0.5",
         "strategy.replay.phase_lr: applies only to mode = 'after_task' or 'auto'; leave it at its default (0.01)"),
        ("strategy.replay.mode=\"mixed\" strategy.replay.phase_epochs=3",
         "strategy.replay.phase_epochs: applies only to mode = 'after_task' or 'auto'"),
        ("strategy.hlop.activity=\"rate\" strategy.hlop.step_rows=3",
         "strategy.hlop.step_rows: applies only to activity = 'steps'"),
        ("strategy.methods=[\"v\"] variants.v.method=\"nope\"", "variants.v.method: unknown method 'nope'"),
        ("strategy.methods=[\"v\"] variants.v.method=\"ewc\" variants.v.train.lr=-3", "variants.v"),
        ("strategy.methods=[\"v\"] variants.v.lr=1", "variants.v"),
        ("strategy.methods=[\"v\"] variants.v.method=\"ewc\" variants.v.strategy.si.c=2.0",
         "variants.v.strategy.si.c: the variant runs ewc, which never reads si's options"),
        ("strategy.methods=[\"v\"] variants.v.method=\"ewc\" variants.v.strategy.options.si.c=2.0",
         "variants.v.strategy.options.si.c: the variant runs ewc, which never reads si's options"),
    ],
    "ca3": [
        ("functional.backend=\"x\"", "functional.backend"), ("functional.foo=1", "unknown key"),
        ("stress.sizes=[[0,10]]", "below the minimum 1"), ("stress.sizes=[[10]]", "stress.sizes"),
        ("stress.densities=[2.0]", "above the maximum"), ("stress.spacings_ms=[1]", "below the minimum 7"),
        ("stress.variants=[\"x\"]", "stress.variants"), ("stress.fragment_sizes=[0]", "below the minimum 1"),
        ("stress.queries_per_size=0", "below the minimum 1"), ("stress.relearn_fraction=2", "above the maximum"),
        ("stress.enabled=false", "nothing to run"), ("params.nope=1", "params"), ("params.w_ee=\"x\"", "params"),
        ("seeds=[2,2]", "more than once"), ("name=\"a/b\"", "not a plain file name"), ("foo=1", "unknown key"),
        ("stress.sizes=[[10,10]] stress.spacings_ms=[]", "at least one value"),
        ("stress.sizes=[]", "stress.sizes: expected at least one value"),
        ("stress.sizes=[[10,10]] stress.fragment_sizes=[50]", "a 50-bit fragment fits in no stored content"),
        ("params.tau_refrac_ms=1e300", "CA3Params.tau_refrac_ms: at most 10000 ms"),
        ("params.delay_s1cue_s2cue_inh_ms=1e9", "CA3Params.delay_s1cue_s2cue_inh_ms: delays are whole milliseconds in "
                                                 "1..10000"),
    ],
    "sparsey": [
        ("data.data_dir=\"/nowhere\"", "data.data_dir: applies only to datasets read from files (digits, mnist5k"),
        ("data.dataset=\"nope\"", "data.dataset"), ("coder.image_shape=[0,8]", "image_shape"),
        ("coder.image_shape=[28,28]", "coder.image_shape: [28, 28] but digits images are 8x8 (H x W); set "
                                      "coder.image_shape = [8, 8]"),
        ("coder.threshold=nan", "finite number"), ("coder.layout=\"x\"", "coder.layout"),
        ("coder.grid=[0,2]", "grid"), ("coder.patch=[9,9]", "patch"), ("coder.mac.n_cms=0", "n_cms"),
        ("coder.mac.cells_per_cm=0", "cells_per_cm"), ("coder.foo=1", "unknown key"),
        ("eval.knn_k=0", "below the minimum 1"), ("eval.n_pairs=1", "below the minimum"),
        ("eval.capacity_points=[100000]", "capacity_points"), ("eval.cue_levels=[1.5]", "above the maximum"),
        ("eval.sequence_length=1", "below the minimum 3"), ("eval.foo=1", "unknown key"),
        ("baseline.sparsity=5", "sparsity"), ("seeds=[-3]", "below the minimum 0"), ("name=\"..\"", "plain file"),
        ("eval.train_items=5", "capacity_points"),
        ("eval.capacity_points=[]", "eval.capacity_points: expected at least one value"),
        ("eval.random_capacity_points=[]", "eval.random_capacity_points: expected at least one value"),
        ("eval.cue_levels=[]", "eval.cue_levels: expected at least one value"),
        ("eval.n_pairs=1099511627776", "above the maximum"), ("coder.grid=[1099511627776,3]", "above the maximum"),
    ],
}
for kind, rows in CONFIG_CASES.items():
    for assignment, message in rows:
        case("config", f"{kind}:{assignment}", message)(run_with(kind, *assignment.split(" ")))


@case("config", "file missing", "experiment file not found")
def _(tmp):
    return ["run", str(tmp / "absent.toml")]


@case("config", "a sweep file given to run", "is a sweep file (base with a grid or points); run it with: spikecl sweep")
def _(tmp):
    return ["run", str(write(tmp, "s.toml", 'base = "x.toml"\n[grid]\n"train.lr" = [0.1]\n'))]


@case("config", "a damaged HDF5 file given to run", "is corrupt or incomplete (Unable to synchronously open file "
      "(bad byte number in an address)); spikecl run takes an experiment file (TOML), or a continual run's results "
      "file to make that run again")
def _(tmp):
    path = tmp / "r.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    return ["run", str(path)]


@case("config", "an empty .h5 file given to run", "r.h5 is empty (corrupt or incomplete: a copy cut short?), and not "
      "an experiment file either (.toml)")
def _(tmp):
    return ["run", str(write(tmp, "r.h5", ""))]


@case("config", "a results file that records no run given to run", "r.h5: its config records no method and seed "
      "to run again")
def _(tmp):
    return ["run", str(write_run(tmp / "r.h5", "continual", {}))]        # HDF5's signature after the 512-byte seal


@case("config", "a sweep's summary given to run", "sweep.h5 is a sweep's summary, not one run to make again: "
      "'spikecl sweep <its sweep file>' runs the sweep")
def _(tmp):
    return ["run", str(write_run(tmp / "sweep.h5", "sweep", {}))]


@case("config", "a run checkpoint given to run", "run.ckpt is a run's checkpoint, not an experiment file: 'spikecl "
      "run <its experiment file> --resume' continues the run")
def _(tmp):
    import zipfile

    with zipfile.ZipFile(tmp / "run.ckpt", "w") as archive:         # what torch.save writes
        archive.writestr("run/data.pkl", b"")
    return ["run", str(tmp / "run.ckpt")]


@case("config", "invalid TOML", "invalid TOML")
def _(tmp):
    return ["run", str(write(tmp, "bad.toml", "name = [unclosed\n"))]


@case("config", "TOML nested a thousand deep", "invalid TOML (arrays or tables nested too deeply to read)")
def _(tmp):
    return ["run", str(write(tmp, "deep.toml", "a = " + "[" * 1000 + "]" * 1000 + "\n"))]


@case("config", "a dotted key 600 tables deep",
      "tables or arrays nested more than 64 levels deep; an experiment file nests a few")
def _(tmp):
    return ["run", str(write(tmp, "deep.toml", ".".join(["a"] * 600) + " = 1\n"))]


@case("config", "a --set key 600 tables deep", "names 600 nested tables; a config nests a few")
def _(tmp):
    return ["run", str(write(tmp, "ok.toml", 'name = "ok"\n')), "--set", ".".join(["a"] * 600) + "=1"]


@case("config", "a --set value nested a thousand deep",
      "--set a: its value nests more than 64 levels of arrays or tables")
def _(tmp):
    return ["run", str(write(tmp, "ok.toml", 'name = "ok"\n')), "--set", "a=" + "[" * 1000 + "]" * 1000]


@case("config", "empty file", "an empty experiment file")
def _(tmp):
    return ["run", str(write(tmp, "empty.toml", "# only a comment\n\n"))]


@case("config", "empty sweep file", "an empty sweep file")
def _(tmp):
    return ["sweep", str(write(tmp, "empty.toml", ""))]


@case("config", "experiment file given to sweep", "is an experiment file ('ca3'), not a sweep file")
def _(tmp):
    return ["sweep", str(write(tmp, "ca3.toml", 'kind = "ca3"\n[stress]\nenabled = false\n'))]


@case("config", "utf-16 file", "not UTF-8 text")
def _(tmp):
    path = tmp / "u16.toml"
    path.write_bytes(CONTINUAL.encode("utf-16"))
    return ["run", str(path)]


@case("config", "binary file", "not UTF-8 text")
def _(tmp):
    path = tmp / "bin.toml"
    path.write_bytes(bytes(range(256)))
    return ["run", str(path)]


@case("config", "experiment is a folder", "is a folder, not an experiment file")
def _(tmp):
    (tmp / "folder.toml").mkdir()
    return ["run", str(tmp / "folder.toml")]


@case("config", "top level is an array of tables", "kind")
def _(tmp):
    return ["run", str(write(tmp, "k.toml", "kind = [1]\n"))]


# --- command-line arguments -----------------------------------------------------------------------------------------
ARGUMENT_CASES = [
    ([], "required"), (["nonsense"], "invalid choice"), (["run"], "required: experiment"),
    (["run", "x.toml", "--seed"], "expected one argument"),
    (["run", "x.toml", "--seed", "a"], "expected an integer ≥ 0, got 'a'"),
    (["run", "x.toml", "--seeds", ","], "--seeds"), (["run", "x.toml", "--seeds", "1,,x"], "--seeds"),
    (["run", "x.toml", "--seeds", "0,0"], "--seeds"), (["run", "x.toml", "--seeds", "-1"], "--seeds"),
    (["run", "x.toml", "--seed", "1", "--seeds", "2"], "not allowed with"),
    (["run", "x.toml", "--device", "tpu"], "invalid choice"), (["run", "x.toml", "--nproc", "0"], "--nproc"),
    (["run", "x.toml", "--nproc", "-2"], "--nproc"), (["run", "x.toml", "--bogus"], "unrecognized arguments"),
    (["report"], "required"), (["report", "--plots"], "expected one argument"), (["export"], "required"),
    (["export", "x.h5", "--weight-bits", "many"], "expected a number of bits from 2 to 8"),
    (["export", "x.h5", "--format", "x"], "invalid"),
    (["export", "x.h5", "--weight-bits", "1"], "--weight-bits"), (["export", "x.h5", "--weight-bits", "9"],
                                                                  "--weight-bits"),
    (["export", "x.h5", "--samples", "-5"], "--samples"), (["export", "x.h5", "--max-drop", "-1"], "--max-drop"),
    (["export", "x.h5", "--headroom", "nan"], "--headroom"), (["export", "x.h5", "--input-bits", "0"], "--input-bits"),
    (["deploy"], "required"),
    (["deploy", "x.h5", "--backend", "x"], "invalid choice"), (["deploy", "x.h5", "--samples", "0"], "--samples"),
    (["sweep"], "required"), (["sweep", "x.toml", "--bogus"], "unrecognized"),
]
for argv, message in ARGUMENT_CASES:
    case("argument", " ".join(argv) or "(none)", message)(lambda tmp, argv=argv: list(argv))


@case("argument", "--set without =", "expected key=value")
def _(tmp):
    return run_with("continual", "train.lr")(tmp)


@case("argument", "--set empty key", "empty key")
def _(tmp):
    return run_with("continual", "=3")(tmp)


@case("argument", "--set through a value", "is not a table")
def _(tmp):
    return run_with("continual", "name.x=3")(tmp)


@case("argument", "--nproc for ca3", "do not train data-parallel")
def _(tmp):
    return run_with("ca3", extra=("--nproc", "2"))(tmp)


@case("argument", "--nproc 2 with train.compile: refused before any process starts",
      "train.compile: not supported in data-parallel runs (finetune)")
def _(tmp):
    return run_with("continual", "train.compile=true", extra=("--nproc", "2"))(tmp)


@case("argument", "--nproc 2 with train.cuda_graph: refused before any process starts",
      "train.cuda_graph: not supported in data-parallel runs (finetune)")
def _(tmp):
    return run_with("continual", "train.cuda_graph=true", extra=("--nproc", "2", "--device", "cuda"))(tmp)


@case("config", "train.cuda_graph on the CPU", "train.cuda_graph: CUDA graphs run on CUDA; device 'cpu'")
def _(tmp):
    return run_with("continual", "train.cuda_graph=true")(tmp)


@case("argument", "--nproc 2 with a bad config: one line, not one per process", "train.lr")
def _(tmp):
    return run_with("continual", "train.lr=-1", extra=("--nproc", "2"))(tmp)


@case("argument", "--output-dir is a file", "not a folder")
def _(tmp):
    write(tmp, "taken", "x")
    return run_with("continual", extra=("--output-dir", str(tmp / "taken")))(tmp)


@case("argument", "--output-dir below a file", "not a folder")
def _(tmp):
    write(tmp, "taken", "x")
    return run_with("continual", extra=("--output-dir", str(tmp / "taken" / "sub")))(tmp)


@case("argument", "--output-dir a dangling link", "is a link to")
def _(tmp):
    (tmp / "gone").symlink_to(tmp / "nowhere")
    return run_with("continual", extra=("--output-dir", str(tmp / "gone")))(tmp)


@case("argument", "a name too long for the file system", "is too long for its file system")
def _(tmp):
    name = "v" * 240                                                   # v...v-seed0.h5's temporary file: 263 bytes
    return run_with("continual", f'strategy.methods=["{name}"]', f'variants.{name}.method="finetune"')(tmp)


@case("argument", "an experiment name longer than a folder name can be", "File name too long")
def _(tmp):
    return run_with("continual", f'name="{"n" * 260}"')(tmp)


@case("argument", "--data-dir missing", "data")
def _(tmp):
    return run_with("continual", "data.dataset=\"mnist\"", extra=("--data-dir", str(tmp / "none")))(tmp)


# --- datasets --------------------------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def mnist_folder(tmp: Path, name: str = "mnist", images: bytes | None = None, labels: bytes | None = None,
                 drop: str | None = None) -> None:
    """Write the four gzip IDX files into the data folder (torchvision's ``MNIST/raw`` / ``FashionMNIST/raw`` for
    ``name``), as ``--data-dir`` is read; ``images``/``labels`` replace the training files' bytes."""
    folder = tmp / "data" / {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name] / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 6)):
        img = idx_bytes(rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        lab = idx_bytes(rng.integers(0, 10, n).astype(np.uint8))
        if split == "train":
            img, lab = images if images is not None else img, labels if labels is not None else lab
        for kind, payload in (("images-idx3-ubyte", img), ("labels-idx1-ubyte", lab)):
            file = f"{split}-{kind}.gz"
            if file != drop:
                (folder / file).write_bytes(gzip.compress(payload))


def with_data(dataset: str, setup: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        setup(tmp)
        return run_with("continual", f"data.dataset=\"{dataset}\"", extra=("--data-dir", str(tmp / "data")))(tmp)
    return build


IMG = np.zeros((12, 28, 28), np.uint8)
DATASET_CASES = [
    ("mnist", "missing file", lambda t: mnist_folder(t, drop="train-labels-idx1-ubyte.gz"),
     "missing train-labels-idx1-ubyte"),
    ("mnist", "empty images", lambda t: mnist_folder(t, images=b""), "bad magic number"),
    ("mnist", "truncated images", lambda t: mnist_folder(t, images=idx_bytes(IMG)[:500]), "(truncated?)"),
    ("mnist", "wrong magic", lambda t: mnist_folder(t, images=b"\x00\x01\x08\x03" + idx_bytes(IMG)[4:]),
     "bad magic number"),
    ("mnist", "wrong rank", lambda t: mnist_folder(t, images=idx_bytes(np.zeros((12, 784), np.uint8))),
     "IDX file of 2 dimensions"),
    ("mnist", "int32 images", lambda t: mnist_folder(t, images=idx_bytes(IMG.astype(np.int32))), "IDX data type 0x0c"),
    ("mnist", "count mismatch", lambda t: mnist_folder(t, labels=idx_bytes(np.zeros(5, np.uint8))),
     "mnist: 5 labels for the 12 images of"),
    ("mnist", "label 11", lambda t: mnist_folder(t, labels=idx_bytes(np.full(12, 11, np.uint8))),
     "labels outside 0..9"),
    ("mnist", "not gzip", lambda t: mnist_folder(t) or (t / "data/MNIST/raw/train-images-idx3-ubyte.gz").write_bytes(
        b"plain"), "Not a gzipped file"),
    ("fashion_mnist", "empty folder", lambda t: (t / "data" / "FashionMNIST" / "raw").mkdir(parents=True),
     "fashion_mnist not found under"),
    ("fashion_mnist", "huge dims", lambda t: mnist_folder(t, "fashion_mnist", images=struct.pack(
        ">BBBBIII", 0, 0, 8, 3, 2**31, 28, 28)),
     "IDX header declares (2147483648, 28, 28), 1683627180032 bytes, more than the 268435456"),
]


def cifar_folder(tmp: Path, test_batch, kind: str = "cifar10") -> None:
    name = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
    folder = tmp / "data" / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3],
            b"fine_labels": [0, 1, 2, 3]}
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if kind == "cifar10" else ["train", "test"]
    for file in files:
        with open(folder / file, "wb") as f:
            pickle.dump(test_batch if file in ("test_batch", "test") else good, f, protocol=2)


DATASET_CASES += [
    ("cifar10", "a list", lambda t: cifar_folder(t, [1, 2, 3]), "expected a pickled dict"),
    ("cifar10", "no labels", lambda t: cifar_folder(t, {b"data": np.zeros((2, 3072), np.uint8)}), "labels"),
    ("cifar10", "wrong width", lambda t: cifar_folder(t, {b"data": np.zeros((2, 100), np.uint8),
                                                          b"labels": [0, 1]}), "cifar"),
    ("cifar10", "label 99", lambda t: cifar_folder(t, {b"data": np.zeros((2, 3072), np.uint8),
                                                       b"labels": [0, 99]}), "label"),
    ("cifar10", "crafted object", lambda t: cifar_folder(t, {b"data": Path("x"), b"labels": [0]}), "refusing"),
    ("cifar10", "not a pickle", lambda t: cifar_folder(t, {}) or (t / "data/cifar-10-batches-py/test_batch")
     .write_bytes(b"garbage"), "cifar"),
    ("cifar100", "a list", lambda t: cifar_folder(t, [1], "cifar100"), "expected a pickled dict"),
    ("cifar100", "missing folder", lambda t: (t / "data").mkdir(), "not found"),
]


def mini_folder(tmp: Path, payload) -> None:
    folder = tmp / "data"
    folder.mkdir(parents=True)
    for split in ("train", "val", "test"):
        good = {"image_data": np.zeros((4, 84, 84, 3), np.uint8),
                "class_dict": {f"{split}1": [0, 1], f"{split}2": [2, 3]}}
        with open(folder / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump(payload if split == "test" else good, f)


DATASET_CASES += [
    ("miniimagenet", "missing folder", lambda t: (t / "data").mkdir(), "not found"),
    ("miniimagenet", "no class_dict", lambda t: mini_folder(t, {"image_data": np.zeros((2, 84, 84, 3), np.uint8)}),
     "expected a 'class_dict' {class name: image indices}, got none"),
    ("miniimagenet", "index out of range", lambda t: mini_folder(t, {"image_data": np.zeros((2, 84, 84, 3), np.uint8),
                                                                     "class_dict": {"a": [0, 7]}}), "outside 0..1"),
    ("miniimagenet", "wrong image shape", lambda t: mini_folder(t, {"image_data": np.zeros((2, 10), np.uint8),
                                                                    "class_dict": {"a": [0, 1]}}),
     "expected 'image_data'"),
    ("miniimagenet", "a set", lambda t: mini_folder(t, {"image_data": {1, 2}, "class_dict": {}}), "expected"),
]
for dataset, what, setup, message in DATASET_CASES:
    case("dataset", f"{dataset}: {what}", message)(with_data(dataset, setup))


# --- results files ---------------------------------------------------------------------------------------------------
def h5_with(tmp: Path, name: str, fill: Callable) -> Path:
    import h5py

    path = tmp / name
    with h5py.File(path, "w") as f:
        fill(f)
    return path


def unknown_kind(f) -> None:
    f.attrs.update(schema="spikecl-results", schema_version=1, kind="x")
    for group in ("config", "environment"):
        f.create_group(group).attrs["json"] = "{}"
    f.create_group("metrics")


RESULTS_CASES = [
    ("missing", lambda t: t / "none.h5", "none.h5: no such results file or folder"),
    ("empty", lambda t: write(t, "e.h5", ""), "e.h5 is corrupt or incomplete"),
    ("text", lambda t: write(t, "t.h5", "hello"), "t.h5 is corrupt or incomplete"),
    ("no schema", lambda t: h5_with(t, "n.h5", lambda f: f.create_dataset("x", data=[1])), "no schema attribute"),
    ("other schema", lambda t: h5_with(t, "o.h5", lambda f: f.attrs.update(schema="other")), "schema 'other'"),
    ("future version", lambda t: h5_with(t, "v.h5", lambda f: f.attrs.update(schema="spikecl-results",
                                                                            schema_version=99)), "schema version 99"),
    ("no kind", lambda t: h5_with(t, "k.h5", lambda f: f.attrs.update(schema="spikecl-results", schema_version=1)),
     "k.h5 has no 'kind' attribute"),
    ("unknown kind", lambda t: h5_with(t, "k.h5", unknown_kind), "a kind this spikecl does not know"),
    ("kind without its config", lambda t: h5_with(t, "k.h5", lambda f: f.attrs.update(
        schema="spikecl-results", schema_version=1, kind="x")), "k.h5 is corrupt or incomplete"),
    ("empty folder", lambda t: (t / "empty").mkdir() or t / "empty", "no results"),
    ("netx file", lambda t: h5_with(t, "net.h5", lambda f: f.create_group("layer")), "net.h5 is not a spikecl results"),
]
for what, make, message in RESULTS_CASES:
    case("results", f"report {what}", message)(lambda tmp, make=make: ["report", str(make(tmp)), "--no-plots"])


@case("results", "truncated results", "r.h5")
def _(tmp):
    source = h5_with(tmp, "full.h5", lambda f: f.create_dataset("acc", data=np.zeros((64, 64))))
    data = source.read_bytes()
    source.unlink()
    (tmp / "r.h5").write_bytes(data[: len(data) // 2])
    return ["report", str(tmp / "r.h5"), "--no-plots"]


@case("results", "report --plots a file", "--plots")
def _(tmp):
    write(tmp, "plots", "x")
    return ["report", str(tmp / "none.h5"), "--plots", str(tmp / "plots")]


# --- checkpoints, export and deploy ----------------------------------------------------------------------------------
def export_of(make: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["export", str(make(tmp)), "-o", str(tmp / "net.h5"), *extra]


def torch_file(tmp: Path, name: str, obj) -> Path:
    import torch

    path = tmp / name
    torch.save(obj, path)
    return path


EXPORT_CASES = [
    ("missing source", lambda t: t / "none.ckpt", "not found"),
    ("empty checkpoint", lambda t: write(t, "e.ckpt", ""), "e.ckpt"),
    ("text checkpoint", lambda t: write(t, "t.ckpt", "not a checkpoint"), "t.ckpt"),
    ("tensor checkpoint", lambda t: torch_file(t, "x.ckpt", {"a": 1}), "x.ckpt"),
    ("checkpoint of a list", lambda t: torch_file(t, "l.ckpt", [1, 2]), "l.ckpt"),
    ("crafted checkpoint", lambda t: torch_file(t, "c.ckpt", {"x": Path("/tmp")}), "c.ckpt"),
    ("unknown suffix", lambda t: write(t, "x.csv", "a,b"), "x.csv"),
    ("results without a network", lambda t: h5_with(t, "r.h5", lambda f: f.attrs.update(
        schema="spikecl-results", schema_version=1, kind="ca3")), "r.h5"),
]
for what, make, message in EXPORT_CASES:
    case("export", what, message)(export_of(make))


@case("export", "-o below a file", "is not a folder")
def _(tmp):
    write(tmp, "file", "x")
    return ["export", str(tmp / "none.ckpt"), "-o", str(tmp / "file" / "net.h5")]


for flag in (["--format", "nir"], ["--weight-bits", "4"], ["--samples", "0"], ["--force"]):
    # a CA3 experiment exports as a learning graph: the trained networks' options are refused, not ignored
    case("export", f"ca3 file with {flag[0]}", f"{flag[0]} applies to trained networks")(
        lambda tmp, flag=flag: ["export", str(ROOT / "models" / "ca3_cam.toml"), "-o", str(tmp / "ca3.h5"), *flag])


for flag in (["--max-drop", "1"], ["--force"]):
    # the accuracy guard's options with the check skipped: refused, not ignored
    case("export", f"{flag[0]} with --samples 0", f"{flag[0]} applies to the accuracy check, which --samples 0 skips")(
        lambda tmp, flag=flag: ["export", str(tmp / "src.ckpt"), "-o", str(tmp / "net.h5"), "--samples", "0", *flag])


@case("export", "-o a folder", "is a folder; name the file to write")
def _(tmp):
    (tmp / "out").mkdir()
    write(tmp, "src.ckpt", "")
    return ["export", str(tmp / "src.ckpt"), "-o", str(tmp / "out")]


@case("export", "-o exists", "exists")
def _(tmp):
    write(tmp, "net.h5", "keep me")
    write(tmp, "src.ckpt", "")
    return ["export", str(tmp / "src.ckpt"), "-o", str(tmp / "net.h5")]


DEPLOY_CASES = [
    ("missing", lambda t: t / "none.h5", "not found"),
    ("text", lambda t: write(t, "t.h5", "hello"), "t.h5"),
    ("results file", lambda t: h5_with(t, "r.h5", lambda f: f.attrs.update(schema="spikecl-results",
                                                                          schema_version=1)), "r.h5"),
    ("netx without layers", lambda t: h5_with(t, "n.h5", lambda f: f.attrs.update(schema="spikecl-netx")), "n.h5"),
    ("netx of another version", lambda t: h5_with(t, "v.h5", lambda f: f.create_group("spikecl").attrs.update(
        schema="spikecl-netx", schema_version=99)), "v.h5"),
]
for what, make, message in DEPLOY_CASES:
    case("deploy", what, message)(lambda tmp, make=make: ["deploy", str(make(tmp))])


# --- sweeps ----------------------------------------------------------------------------------------------------------
SWEEP_CASES = [
    ("base missing", "base = \"absent.toml\"\n", "absent.toml"),
    ("no base", "name = \"s\"\n", "base"),
    ("unknown key", "base = \"tiny.toml\"\ncolour = 1\n", "unknown key"),
    ("bad grid key", "base = \"tiny.toml\"\n[grid]\n\"train.nope\" = [1]\n", "train.nope"),
    ("bad grid value", "base = \"tiny.toml\"\n[grid]\n\"train.lr\" = [-1.0]\n", "train.lr"),
    ("grid not a list", "base = \"tiny.toml\"\n[grid]\n\"train.lr\" = 0.1\n", "grid"),
    ("empty grid list", "base = \"tiny.toml\"\n[grid]\n\"train.lr\" = []\n", "grid"),
    ("grid and points", "base = \"tiny.toml\"\npoints = [{\"train.lr\" = 0.1}]\n[grid]\n\"train.lr\" = [0.1]\n",
     "points"),
    ("bad method", "base = \"tiny.toml\"\nmethods = [\"nope\"]\n", "nope"),
    ("repeated seeds", "base = \"tiny.toml\"\nseeds = [1, 1]\n", "more than once"),
    ("negative retries", "base = \"tiny.toml\"\nmax_retries = -1\n", "max_retries"),
    ("name with a folder", "base = \"tiny.toml\"\nname = \"a/b\"\n", "not a plain file name"),
    ("set bad value", "base = \"tiny.toml\"\n[set]\n\"network.hidden\" = [0]\n", "network.hidden"),
    ("select unknown", "base = \"tiny.toml\"\nselect = \"best\"\n", "select"),
    ("base is a sweep", "base = \"sweep.toml\"\n", "sweep.toml"),
]
for what, text, message in SWEEP_CASES:
    def _sweep(tmp, text=text):
        write(tmp, "tiny.toml", CONTINUAL)
        return ["sweep", str(write(tmp, "sweep.toml", text))]
    case("sweep", what, message)(_sweep)


# --- the contract ----------------------------------------------------------------------------------------------------
def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def check_contract(tmp: Path, argv: list[str], message: str, capsys) -> str:
    before = snapshot(tmp)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, f"exit code {code}, stderr: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith("spikecl: error: ") and "Traceback" not in err
    assert message in lines[0], f"{message!r} not in {lines[0]!r}"
    left = snapshot(tmp) - before
    assert not left, f"left behind: {sorted(left)}"
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for p in tmp_path.rglob("*"):                                   # read-only folders must be removable
        if p.is_dir():
            p.chmod(0o755)


@pytest.mark.parametrize("item", CASES, ids=[f"{c.category}:{c.id}" for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(item, workdir, capsys):
    argv = item.build(workdir)
    capsys.readouterr()
    check_contract(workdir, argv, item.message, capsys)


def test_the_corpus_covers_every_category():
    counts = Counter(c.category for c in CASES)
    assert sum(counts.values()) >= 150
    assert set(counts) == {"config", "argument", "dataset", "results", "export", "deploy", "sweep"}
    assert all(n >= 5 for n in counts.values()), counts
