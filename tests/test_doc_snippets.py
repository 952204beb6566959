"""The Python blocks of README.md and docs/*.md parse, and every spikecl name they import exists (a moved or
renamed function shows here, not in a reader's traceback)."""

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line of the opening fence, code) of every fenced ```python block of ``path``."""
    text = path.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in re.finditer(r"^```python\n(.*?)^```", text,
                                                                               re.S | re.M)]


BLOCKS = [(path, line, code) for path in DOCS for line, code in python_blocks(path)]


def test_the_docs_hold_python_blocks():
    """The blocks are found (a changed fence would otherwise leave the check below with nothing to read)."""
    assert len(BLOCKS) >= 8 and {path.name for path, _, _ in BLOCKS} >= {"README.md", "export.md", "sdr.md"}


@pytest.mark.parametrize("path, line, code", BLOCKS, ids=[f"{p.name}:{n}" for p, n, _ in BLOCKS])
def test_a_docs_python_block_parses_and_its_spikecl_imports_exist(path, line, code):
    """A block is Python, and each ``import spikecl...`` / ``from spikecl... import name`` in it resolves."""
    tree = ast.parse(code, filename=f"{path.name}:{line}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "spikecl":
                    importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "spikecl":
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)
                       and not (hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{a.name}"))]
            assert not missing, f"{path.name}:{line + node.lineno}: {node.module} has no {', '.join(missing)}"
