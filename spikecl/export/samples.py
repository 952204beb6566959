"""The samples an exported network is checked on: those of the stream it was trained on, rebuilt from the training
config stored with it by the stream builder training used (:func:`spikecl.data.streams.stream_from_config`), with
the dataset files checked against those it trained on (numpy, torch-free).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spikecl.config import (REGISTERED_DATASETS, DataConfig, StreamConfig, check_known_dataset, check_seed,
                            reads_no_folder)
from spikecl.data.streams import Stream, source_crc, stream_from_config
from spikecl.errors import ConfigError, DataError
from spikecl.export.float_model import tasks_trained
from spikecl.options import from_dict
from spikecl.recorded import recorded_as_now
from spikecl.remedies import option


def data_dir_option() -> str:
    """The data folder's option as the caller passes it: ``--data-dir`` on the command line, the ``data_dir`` of
    export_file, deploy and :func:`stream_samples` from Python (:func:`spikecl.remedies.option`)."""
    return option("--data-dir", keyword="data_dir")


def check_reads_data_dir(config: dict, data_dir: str | None) -> None:
    """``data_dir`` given for a network trained on a dataset that comes with its package or is registered: a
    one-line ConfigError."""
    dataset = (config.get("data") or {}).get("dataset") if isinstance(config, dict) else None
    why = reads_no_folder(dataset)
    if data_dir and why:
        raise ConfigError(f"{data_dir_option()}: the network was trained on {dataset}, which {why} and is read from "
                          f"no folder; drop {data_dir_option()}")


def trained_stream(config: dict, data_dir: str | None = None) -> Stream:
    """The task stream a network was trained on, rebuilt from its stored training ``config`` (``data``, ``stream``
    and the run ``seed``) by the builder training used; ``data_dir`` overrides ``data.data_dir``. Dataset files
    other than those it trained on (``config["data_crc"]``, recorded where a run read files) are a DataError."""
    config = recorded_as_now(config)
    try:
        data, stream = config["data"], config["stream"]
    except (KeyError, TypeError):
        raise ConfigError("the exported network carries no training config (data, stream) to draw samples from; "
                          "run it on samples of your own with the Lava runner: python -m spikecl_lava.runner NET "
                          "--inputs FILE -o RUN.h5 (docs/export.md)") from None
    check_known_dataset(data.get("dataset") if isinstance(data, dict) else None)
    data_cfg = from_dict(DataConfig, data, "data.")
    check_reads_data_dir(config, data_dir)
    if data_dir:
        data_cfg = replace(data_cfg, data_dir=data_dir)
    seed = check_seed(config.get("seed", 0), "the stored training config's seed")
    built = stream_from_config(from_dict(StreamConfig, stream, "stream."), data_cfg, seed, recorded=True)
    trained_on, now = config.get("data_crc"), source_crc(built)
    if None not in (trained_on, now) and trained_on != now and data_cfg.dataset in REGISTERED_DATASETS:
        raise DataError(f"the network was trained on other {data_cfg.dataset} data (its registered loader returns "
                        "other images or labels now); load the plugin that registered the data it trained on")
    if None not in (trained_on, now) and trained_on != now:            # the folder may move, not change
        raise DataError(f"the network was trained on other {data_cfg.dataset} files (their images or labels differ "
                        f"from those in {data_cfg.data_dir or 'the default datasets folder'} now); point "
                        f"{data_dir_option()} at the files it trained on")
    return built


def stream_samples(config: dict, max_samples: int | None = None, data_dir: str | None = None,
                   split: str = "test"):
    """Samples (``split`` "test" or "train") of every task of the stream a network was trained on (of the tasks it
    had trained, ``config["tasks_trained"]``, for a checkpoint of a run stopped between tasks), as the network
    receives them (input-coded streams: the codes): (x [N, ...], y [N], heads [N]).

    ``config`` is the training config stored with the network (see :func:`trained_stream`); "test" is the split
    the run was evaluated on (``data.eval_split``). When ``max_samples`` cuts the set, every task gives its first
    samples, ``max_samples // tasks`` of them or one more (the first ``max_samples % tasks`` tasks), or all it has.
    """
    if split not in ("test", "train"):
        raise ConfigError(f"stream_samples: split {split!r} is not one of 'test' (what the run was evaluated on) and "
                          "'train'")
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer))
                                    or max_samples < 0):
        raise ConfigError(f"stream_samples: max_samples must be a whole number >= 0 or None, got {max_samples!r}")
    stream = trained_stream(config, data_dir)
    tasks = list(stream)[:tasks_trained(config) or len(stream)]
    xs, ys, hs = [], [], []
    for i, task in enumerate(tasks):
        tx, ty = (task.x_test, task.y_test) if split == "test" else (task.x_train, task.y_train)
        share = len(ty) if max_samples is None else max_samples // len(tasks) + (i < max_samples % len(tasks))
        n = min(share, len(ty))
        xs.append(tx[:n])
        ys.append(ty[:n])
        hs.append(np.full(n, stream.head(task.index), dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(hs)
