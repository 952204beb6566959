"""Where two recorded configs differ, by dotted key (``train.lr``, ``network.hidden[1]``): what decides whether a
result is kept by ``--resume``, averaged with others by the report, or refused as made otherwise."""

from __future__ import annotations

import typing
from dataclasses import dataclass


def as_written(key: str | None) -> str | None:
    """A dotted config key as an experiment file spells it: strategy options are ``strategy.<method>.<option>``
    (``to_dict`` keeps them under ``strategy.options``)."""
    return key.replace("strategy.options.", "strategy.", 1) if key else key


def first_difference(a: typing.Any, b: typing.Any, prefix: str = "", ignore: typing.Container[str] = ()) -> str | None:
    """The first dotted key (``train.lr``, ``network.hidden[1]``) where two nested configs differ, or None.

    >>> first_difference({"train": {"lr": 0.1, "epochs": 2}}, {"train": {"lr": 0.2, "epochs": 2}})
    'train.lr'
    """
    return next(differences(a, b, prefix, ignore), None)


def differ_phrase(keys: typing.Sequence[str], most: int = 4) -> str:
    """``"train.lr differs"`` or ``"train.epochs, train.lr differ"``: the first ``most`` keys, then how many more.

    >>> differ_phrase(["a", "b", "c"], most=2)
    'a, b and 1 more differ'
    """
    named = ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")
    return f"{named} {'differs' if len(keys) == 1 else 'differ'}"


def differences(a: typing.Any, b: typing.Any, prefix: str = "",
                ignore: typing.Container[str] = ()) -> typing.Iterator[str]:
    """Every dotted key where two nested configs differ, in sorted key order (keys in ``ignore`` skipped).

    >>> list(differences({"train": {"lr": 0.1, "epochs": 2}}, {"train": {"lr": 0.2, "epochs": 3}}))
    ['train.epochs', 'train.lr']
    """
    if prefix.rstrip(".") in ignore:
        return
    if isinstance(a, typing.Mapping) and isinstance(b, typing.Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                if f"{prefix}{key}" not in ignore:
                    yield f"{prefix}{key}"
                continue
            yield from differences(a[key], b[key], f"{prefix}{key}.", ignore)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{prefix.rstrip('.')}[{i}].", ignore)
    elif a != b and not (_is_nan(a) and _is_nan(b)):           # a value is the same as itself, NaN too
        yield prefix.rstrip(".")


def _is_nan(value: typing.Any) -> bool:
    return isinstance(value, float) and value != value


@dataclass(frozen=True)
class OtherMethodsIgnored:
    """The dotted keys a comparison of two configs of a run of ``method`` skips: ``base``, ``variants`` (a variant's
    run records its overrides applied) and the options table of every method that is not a component of ``method``
    (``strategy.options.ewc`` for fine-tuning): changing those does not change the run."""

    base: frozenset
    method: str

    def __contains__(self, key: object) -> bool:
        if key in self.base or key == "variants":
            return True
        parts = str(key).split(".")
        return len(parts) == 3 and parts[:2] == ["strategy", "options"] and parts[2] not in self.method.split("+")


def flatten(table: typing.Mapping, prefix: str = "") -> dict:
    """{"train": {"lr": 0.1}} and {"train.lr": 0.1} → {"train.lr": 0.1}."""
    out = {}
    for key, value in table.items():
        if isinstance(value, typing.Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out
