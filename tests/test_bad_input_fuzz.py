"""Seeded fuzzing of the error contract: random config values and random damage to real files.

Every mutated config of every kind must either validate or raise a one-line :class:`SpikeCLError`; every damaged
file (results, checkpoint, netx, TOML, dataset pickle, IDX) must either read back or raise one, never another
exception. The generator is seeded, so a failure names a reproducible case.
"""

from __future__ import annotations

import copy
import gzip
import pickle
import tomllib
from pathlib import Path

import numpy as np
import pytest

from spikecl.errors import SpikeCLError
from spikecl.experiment_kind import kind
from test_bad_input_corpus import BASES, idx_bytes

WEIRD = [0, -1, 1, 2**31, 2**63, -(2**63) - 1, 1e308, -1e-300, float("nan"), float("inf"), 0.5, True, False, "",
         "x", "../up", "/abs", "a\0b", "é", [], [0], [-1], [[]], [1, 1], ["x"], [1e9], {}, {"a": 1}, {"": []},
         [[0, 0]], ["finetune", "finetune"]]


def _paths(table: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in table.items():
        out.append(prefix + (key,))
        if isinstance(value, dict):
            out += _paths(value, prefix + (key,))
    return out


def _set(table: dict, path: tuple, value) -> None:
    for part in path[:-1]:
        table = table[part]
    table[path[-1]] = value


@pytest.mark.parametrize("kind_name", sorted(BASES))
def test_random_config_values_validate_or_fail_in_one_line(kind_name):
    rng = np.random.default_rng(1234)
    base = tomllib.loads(BASES[kind_name])
    paths = _paths(base) + [("network", "beta"), ("train", "lr"), ("strategy", "ewc", "lam"), ("eval", "knn_k"),
                            ("stress", "densities"), ("coder", "mac", "n_cms"), ("params", "w"), ("new_key",)]
    k = kind(kind_name)
    outcomes = {"valid": 0, "refused": 0}
    for trial in range(150):
        raw = copy.deepcopy(base)
        for _ in range(int(rng.integers(1, 4))):
            path = paths[int(rng.integers(len(paths)))]
            try:
                _set(raw, path, copy.deepcopy(WEIRD[int(rng.integers(len(WEIRD)))]))
            except (KeyError, TypeError):                              # the path crosses a value made weird
                continue
        try:
            k.load(copy.deepcopy(raw))
            outcomes["valid"] += 1
        except SpikeCLError as exc:
            message = str(exc)
            assert message and "\n" not in message, (trial, raw, message)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 50, outcomes                          # the fuzzer does reach the checks


def _damaged(data: bytes, rng) -> bytes:
    """Truncate, flip bytes, or zero a block of ``data``."""
    how = int(rng.integers(3))
    if how == 0:
        return data[: int(rng.integers(len(data)))]
    out = bytearray(data)
    if how == 1:
        for i in rng.integers(len(out), size=int(rng.integers(1, 32))):
            out[i] ^= int(rng.integers(1, 256))
    else:
        start = int(rng.integers(len(out)))
        n = min(int(rng.integers(1, 4096)), len(out) - start)
        out[start:start + n] = bytes(n)
    return bytes(out)


def _readers(tmp: Path, zero_reset_run):
    """(name, valid file bytes, suffix, reader) for every kind of file a user hands spikecl."""
    from spikecl.data.datasets import read_idx
    from spikecl.data.pickles import load_data_pickle
    from spikecl.export.netx import read_netx, write_netx
    from spikecl.export.quantize import QuantConfig, quantize
    from spikecl.export.spec import load_trained
    from spikecl.io import read_run
    from spikecl.toml_files import load_toml

    results, ckpt, _ = zero_reset_run
    netx = write_netx(tmp / "net.h5", quantize(load_trained(results), QuantConfig()))
    pickled = pickle.dumps({b"data": np.arange(3072, dtype=np.uint8).reshape(1, -1), b"labels": [3]}, protocol=2)
    idx = gzip.compress(idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251))
    return [
        ("results", results.read_bytes(), ".h5", lambda p: read_run(p, "continual")),
        ("checkpoint", ckpt.read_bytes(), ".ckpt", load_trained),
        ("trained results", results.read_bytes(), ".h5", load_trained),
        ("netx", netx.read_bytes(), ".h5", read_netx),
        ("toml", BASES["continual"].encode(), ".toml", load_toml),
        ("pickle", pickled, ".pkl", load_data_pickle),
        ("idx", idx, ".gz", read_idx),
    ]


def test_damaged_files_read_back_or_fail_in_one_line(tmp_path, zero_reset_run):
    rng = np.random.default_rng(99)
    for name, data, suffix, reader in _readers(tmp_path, zero_reset_run):
        reader(_write(tmp_path, f"{name}-intact{suffix}", data))     # the undamaged file reads
        refused = 0
        for trial in range(25):
            path = _write(tmp_path, f"{name}-{trial}{suffix}", _damaged(data, rng))
            try:
                reader(path)
            except SpikeCLError as exc:
                assert str(exc) and "\n" not in str(exc), (name, trial, str(exc))
                refused += 1
        assert refused > 0, name                                      # damage is noticed somewhere


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path
