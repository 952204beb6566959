"""Test helper: a registry (a module-level dict) as it was before a test changed it."""

import contextlib


@contextlib.contextmanager
def restored(mapping: dict):
    """Run the body, then put ``mapping`` back as it was (entries the body added, changed or removed)."""
    saved = dict(mapping)
    try:
        yield
    finally:
        mapping.clear()
        mapping.update(saved)
