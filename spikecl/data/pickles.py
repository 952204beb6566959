"""Reading dataset pickles (CIFAR batches, miniImageNet caches) without running code from the file.

``pickle.load`` calls whatever function a pickle names, so a crafted file can run arbitrary code.
:func:`load_data_pickle` admits only what dataset pickles hold — numpy arrays, dtypes and scalars inside dicts,
lists, tuples, strings, bytes and numbers — and turns anything else into a one-line :class:`DataError`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from spikecl.errors import DataError

#: (module, name) pairs a dataset pickle may name: numpy's array, dtype and scalar reconstructors (numpy 1 and 2;
#: ``_frombuffer`` for protocol 5), the str-to-bytes encoder that protocol-2 pickles use for bytes, and ``bytes``
#: itself, which protocols 0-2 call for an empty bytes value.
ALLOWED = ({(f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")}
           | {(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")}
           | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("builtins", "bytes"),
              ("__builtin__", "bytes")})


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise DataError(f"{self.path}: refusing to load a pickle that names {module}.{name} (dataset pickles "
                            f"may hold only numpy arrays, lists, dicts and scalars)")
        if name == "bytes":
            return self._bytes
        return super().find_class(module, name)

    def _bytes(self, *args) -> bytes:
        """``bytes()`` or ``bytes`` of a string the file holds (``bytes(text, encoding)``); ``bytes(n)``, n zero
        bytes from a number (a Python or numpy integer), would let a file of a few bytes build arrays of any size
        (a 175-byte CIFAR batch took 7 GB)."""
        if args and not isinstance(args[0], (str, bytes)):
            raise DataError(f"{self.path}: refusing a pickle that makes a bytes value from a "
                            f"{type(args[0]).__name__} ({str(args[0])[:20]}): dataset pickles store their bytes")
        return bytes(*args)


def load_data_pickle(path: Path) -> dict:
    """The dict stored in the dataset pickle at ``path`` (Python 2 pickles' strings stay bytes); DataError for an
    unreadable file, a forbidden class or a top level that is not a dict."""
    try:
        with open(path, "rb") as f:
            unpickler = _DataUnpickler(f, encoding="bytes")
            unpickler.path = path
            out = unpickler.load()
    except DataError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, LookupError,
            MemoryError, OverflowError) as exc:      # the last three: a damaged codec name or length field
        raise DataError(f"{path}: unreadable pickle ({type(exc).__name__})") from None
    if not isinstance(out, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(out).__name__}")
    return out
