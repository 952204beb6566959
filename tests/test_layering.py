"""Dependencies point one way (docs: DESIGN "Rules that keep it simple"): every import of every module, lazy ones
included, read from the source."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spikecl"
KINDS = ("continual", "memory", "sdr", "export")

#: part -> the parts of spikecl it may not import
FORBIDDEN = {
    "data": ("snn", *KINDS, "io", "cli", "plots", "report"),    # the floor: numpy, config, errors
    "snn": (*KINDS, "cli"),
    **{kind: ("cli", *(other for other in KINDS if other != kind)) for kind in KINDS},
}
FORBIDDEN["export"] += ("snn",)                                  # torch-free, for the Lava environment


def imported_parts(path: Path) -> set[tuple[str, int]]:
    """(part of spikecl, line) of every ``spikecl.<part>`` a module imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        out |= {(name.split(".")[1], node.lineno) for name in names if name.startswith("spikecl.")}
    return out


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_parts_import_only_what_lies_below_them(part):
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports spikecl.{other}"
             for path in sorted((PACKAGE / part).rglob("*.py"))
             for other, line in sorted(imported_parts(path)) if other in FORBIDDEN[part]]
    assert not wrong, "; ".join(wrong)
