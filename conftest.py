"""What pytest collects of spikecl's own modules (their doctests, ``--doctest-modules``): a module that needs an
optional package this environment lacks is left out, as the tests that need one skip (torch aside: the suite
needs it, as tests/conftest.py says in one line where it is missing; ``pytest`` from an sdist
installed without the ``triton`` extra stopped at collection). The packages are looked for, not imported: Triton
takes its interpreter mode at import, which tests/conftest.py sets first."""

import importlib.util

#: modules that import an optional package when imported: {path: the package}
NEEDS = {"spikecl/snn/lif_triton.py": "triton"}


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):                  # a parent package missing, or a module without a spec
        return False


collect_ignore = [path for path, package in NEEDS.items() if not _installed(package)]
