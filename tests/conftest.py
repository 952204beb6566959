"""Shared fixtures: small real datasets loaded once per session."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    """scikit-learn digits as (x_train [N, 64], y_train, x_test, y_test), float32 in [0, 1], fixed split."""
    from spikecl.data.datasets import load_dataset

    d = load_dataset("digits", seed=0)
    return (d.x_train.reshape(len(d.x_train), -1), d.y_train, d.x_test.reshape(len(d.x_test), -1), d.y_test)
