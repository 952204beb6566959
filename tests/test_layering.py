"""Dependencies point one way (docs: DESIGN "Rules that keep it simple"): every import of every module, lazy ones
included, read from the source."""

import ast
import os
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spikecl"
KINDS = ("continual", "memory", "sdr", "export")

#: part -> the parts of spikecl it may not import
FORBIDDEN = {
    "data": ("snn", *KINDS, "io", "cli", "commands", "report"),  # the floor: numpy, config, errors
    "snn": (*KINDS, "cli", "commands"),
    **{kind: ("cli", "commands", *(other for other in KINDS if other != kind)) for kind in KINDS},
}
FORBIDDEN["export"] += ("snn",)                                  # torch-free, for the Lava environment
#: part -> modules of a forbidden part it may import all the same: export reads a trained network from a continual
#: run's results file, whose schema module imports only the core (test_continual_results_need_only_the_core)
MAY = {"export": {"spikecl.continual.results"}}


def imported_modules(path: Path) -> set[tuple[str, int]]:
    """(module, line) of every ``spikecl.<...>`` module a module imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        out |= {(name, node.lineno) for name in names if name.startswith("spikecl.")}
    return out


def imported_parts(path: Path) -> set[tuple[str, int]]:
    """(part of spikecl, line) of every ``spikecl.<part>`` a module imports."""
    return {(name.split(".")[1], line) for name, line in imported_modules(path)}


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_parts_import_only_what_lies_below_them(part):
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
             for path in sorted((PACKAGE / part).rglob("*.py"))
             for name, line in sorted(imported_modules(path))
             if name.split(".")[1] in FORBIDDEN[part] and name not in MAY.get(part, ())]
    assert not wrong, "; ".join(wrong)


def test_continual_results_need_only_the_core():
    """The continual kind's results files are read where torch is not (spikecl report, export, the Lava side):
    continual/results.py imports only spikecl's core, and importing it (with its package) leaves torch out."""
    import subprocess
    import sys

    wrong = [f"continual/results.py:{line} imports spikecl.{other}"
             for other, line in sorted(imported_parts(PACKAGE / "continual" / "results.py"))
             if not (PACKAGE / f"{other}.py").is_file()]
    assert not wrong, "; ".join(wrong)
    done = subprocess.run([sys.executable, "-c", "import sys, spikecl.continual.results, spikecl.export.spec; "
                           "assert 'torch' not in sys.modules, 'torch imported'"], cwd=PACKAGE.parent,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


#: what the core (spikecl's top-level modules: config, errors, io, figures, the kind contract and driver, ...) may
#: not import: it lies below every part; the driver looks for spikecl's datasets' files (the floor) before any work
CORE_FORBIDDEN = ("snn", *KINDS, "data", "commands", "cli")
CORE_MAY = {"experiment_kind.py": {"data"}, "__main__.py": {"cli"}, "cli.py": {"commands"}}


def test_the_core_imports_no_part_above_it_and_only_the_cli_its_commands():
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports spikecl.{other}"
             for path in sorted(PACKAGE.glob("*.py"))
             for other, line in sorted(imported_parts(path))
             if other in CORE_FORBIDDEN and other not in CORE_MAY.get(path.name, ())]
    wrong += [f"{path.relative_to(PACKAGE.parent)}:{line} imports spikecl.commands"
              for path in sorted(PACKAGE.rglob("*.py")) if path.parent.name != "commands" and path.name != "cli.py"
              for other, line in sorted(imported_parts(path)) if other == "commands"]
    assert not wrong, "; ".join(wrong)



def test_atomic_writes_lie_below_the_files_that_say_how_a_run_stands():
    """spikecl/atomic.py (atomic writes, the checks before them, the lock) imports only spikecl's errors, path
    probes and how an error names an option (spikecl/remedies.py, which imports nothing of spikecl): what the files
    beside a results file say of its run (checkpoint, divergence record, replacing mark, live writer) is
    spikecl/run_files.py, which writes through it."""
    wrong = [f"atomic.py:{line} imports {name}" for name, line in sorted(imported_modules(PACKAGE / "atomic.py"))
             if name not in ("spikecl.errors", "spikecl.paths", "spikecl.remedies")]
    assert not wrong, "; ".join(wrong)

#: the commands that run, report or export any kind: they ask the kind (spikecl.experiment_kind.Kind's hooks),
#: never import a kind's part or compare with a kind's name (``spikecl sweep`` is the continual kind's own command)
KIND_BLIND_COMMANDS = ("run.py", "export.py", "report.py")


def test_commands_of_every_kind_ask_the_kind_not_its_name():
    from spikecl.experiment_kind import KINDS as KIND_NAMES

    wrong = []
    for name in KIND_BLIND_COMMANDS:
        path = PACKAGE / "commands" / name
        wrong += [f"commands/{name}:{line} imports spikecl.{other}" for other, line in sorted(imported_parts(path))
                  if other in ("continual", "memory", "sdr")]
        wrong += [f"commands/{name}:{node.lineno} compares with the kind name {c.value!r}"
                  for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Compare)
                  for c in (node.left, *node.comparators) if isinstance(c, ast.Constant) and c.value in KIND_NAMES]
    assert not wrong, "; ".join(wrong)


def _module(path: Path) -> str:
    """'spikecl/continual/runner.py' -> 'spikecl.continual.runner'; hardware/<pkg>/... keeps its package name."""
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every module an import statement of ``path`` names (relative imports resolved; lazy ones included)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    root = PACKAGE.parent
    files = {_module(p.relative_to(root)): p for p in PACKAGE.rglob("*.py")}
    files.update({_module(p.relative_to(root / "hardware")): p for p in (root / "hardware").rglob("*.py")
                  if "tests" not in p.relative_to(root / "hardware").parts})
    return {name: {m for m in _imports(path, name) if m in files and m != name} for name, path in files.items()}


def test_no_import_cycle():
    """No chain of imports (lazy ones included) leads from a module back to itself."""
    graph, done, cycles = _graph(), set(), []

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node):] + [node]))
        elif node not in done:
            for nxt in sorted(graph[node]):
                visit(nxt, stack + [node])
            done.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert not cycles, "import cycles: " + "; ".join(cycles[:5])


def test_hardware_never_imports_snn_or_torch():
    """The Lava side stays torch-free: hardware/ imports neither spikecl.snn nor torch."""
    wrong = sorted(f"{name} imports {m}" for name, targets in _graph().items() if not name.startswith("spikecl")
                   for m in targets if m.startswith("spikecl.snn"))
    wrong += sorted(f"{p.name} imports torch" for p in (PACKAGE.parent / "hardware").rglob("*.py")
                    if "torch" in {n.split(".")[0] for n in _imports(p, _module(p.relative_to(PACKAGE.parent)))})
    assert not wrong, "; ".join(wrong)


def _assignments(path: Path, attribute: str) -> set[str]:
    """The functions of ``path`` (``<module>`` outside any) that assign ``<something>.<attribute>``."""
    out = set()

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Attribute) and child.attr == attribute and isinstance(child.ctx, ast.Store):
                out.add(where)
            visit(child, child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where)

    visit(ast.parse(path.read_text()), "<module>")
    return out


def test_only_a_projecting_block_sets_a_layers_projection():
    """Projectors are handed to the training pass, not left on the layers for strategies to switch (docs: DESIGN,
    "Activity that strategies consume is handed to them"): ``weight_projection`` is assigned only where a layer
    starts without one and by ``SpikingNetwork.projecting``, which restores it after its block."""
    found = {f"{path.relative_to(PACKAGE.parent)}:{where}" for path in sorted(PACKAGE.rglob("*.py"))
             for where in _assignments(path, "weight_projection")}
    assert found == {"spikecl/snn/layers.py:__init__", "spikecl/snn/networks.py:projecting"}


def _require_calls(path: Path) -> list[tuple[int, str, str, bool]]:
    """(line, module, extra, has an install command) of every ``require(module, extra)`` call in ``path``."""
    return [(node.lineno, node.args[0].value, node.args[1].value, any(k.arg == "install" for k in node.keywords))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and len(node.args) == 2]


def test_every_optional_import_names_an_extra_that_exists():
    """A missing optional package's error names an install command that brings it: an extra of pyproject.toml,
    or its own command; experiments of either simulator get figures and progress bars (the ``plots`` extra)."""
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    calls = [(path, *call) for path in sorted(PACKAGE.rglob("*.py")) for call in _require_calls(path)]
    assert len(calls) > 20
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} require({module!r}, {extra!r})"
             for path, line, module, extra, install in calls if extra not in extras and not install]
    assert not wrong, "; ".join(wrong)
    assert {"matplotlib>=3.8.4", "tqdm>=4.60"} <= set(extras["plots"])
    assert all("spikecl[plots]" in extras[simulator] for simulator in ("torch", "brian2"))


def test_a_missing_optional_package_is_one_line_naming_its_install_command():
    from spikecl.errors import DependencyError, require

    with pytest.raises(DependencyError, match=r"^no_such_module is not installed; install it with: pip install "
                                              r"'spikecl\[plots\]'$"):
        require("no_such_module", "plots")
    with pytest.raises(DependencyError, match=r"install it with: pip install --no-deps x==1$"):
        require("no_such_module", "export", install="pip install --no-deps x==1")


@pytest.mark.parametrize("body, said", [
    ("raise AttributeError('_ARRAY_API not found')",
     "does not import (AttributeError: _ARRAY_API not found); a build for other versions of its dependencies (e.g. "
     "another numpy) does that: upgrade it with: pip install --upgrade brokenpkg"),
    ("raise ValueError('numpy.dtype size changed, may indicate binary incompatibility.\\nmore')",
     "does not import (ValueError: numpy.dtype size changed, may indicate binary incompatibility.); a build for "
     "other versions of its dependencies (e.g. another numpy) does that: upgrade it with: pip install --upgrade "
     "brokenpkg"),
    ("import brokenpkg._core", "does not import (ModuleNotFoundError: No module named 'brokenpkg._core'); a build "
     "for other versions of its dependencies (e.g. another numpy) does that: upgrade it with: pip install --upgrade "
     "brokenpkg"),                                                    # torch without its torch._C, say
    ("import no_such_dependency_of_it", "needs no_such_dependency_of_it, which is not installed; install it (pip "
     "install no_such_dependency_of_it)")])
def test_an_installed_package_that_does_not_import_is_not_called_missing(tmp_path, monkeypatch, body, said):
    """A package built for another numpy (matplotlib 3.7 or scikit-learn 1.3 beside numpy 2) was said to be "not
    installed", with an install command that changes nothing, or (h5py 3.8) raised a traceback: it is named as
    installed, with its error's first line and an upgrade of it; one that lacks a package it imports names that."""
    from spikecl.errors import DependencyError, distribution, require

    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DependencyError) as caught:
        require("brokenpkg.sub", "data")
    assert str(caught.value) == f"brokenpkg is installed but {said}"
    assert distribution("sklearn") == "scikit-learn" and distribution("no_such_package") == "no_such_package"


def test_the_sdist_holds_the_whole_project_its_tests_need(tmp_path):
    """A user who builds from the sdist can run its tests and experiments: every tracked file of tests/ (helpers,
    data), models/, examples/ and hardware/ is in it, with the conftest.py that leaves out the doctests of modules
    whose optional package is missing, and no byte code or build folder."""
    import shutil
    import subprocess
    import tarfile

    from setuptools import build_meta

    root = PACKAGE.parent
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout: nothing to compare the sdist with")
    source = tmp_path / "source"                  # a clean copy: a checkout's old egg-info would list the files
    for name in tracked.stdout.splitlines():
        if (root / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, source / name)
    for stale in ("build/lib/spikecl/removed.py", "hardware/build/lib/spikecl_lava/removed.py"):   # pip's leftovers
        (source / stale).parent.mkdir(parents=True, exist_ok=True)
        (source / stale).write_text("")
    with pytest.MonkeyPatch.context() as m:
        m.chdir(source)
        name = build_meta.build_sdist(str(tmp_path))
    with tarfile.open(tmp_path / name) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    wanted = {n for n in tracked.stdout.splitlines() if n.split("/")[0] in ("tests", "models", "examples", "hardware")}
    assert wanted | {"Makefile", "conftest.py"} <= members
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc") or "spikecl_lava.egg-info" in m
                or m.endswith("removed.py")]


def test_doctests_of_a_module_whose_optional_package_is_missing_are_left_out(tmp_path):
    """``pytest`` (tests and spikecl's doctests) stopped at collection where triton, an optional extra, was not
    installed: lif_triton.py imports it."""
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['triton'] = None\n")     # as if absent
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "spikecl/snn"], cwd=PACKAGE.parent, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode in (0, 5) and "error" not in done.stdout.lower(), done.stdout[-2000:]
