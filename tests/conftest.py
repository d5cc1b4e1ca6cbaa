"""Shared fixtures."""

import pytest


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the reference implementation; a test dependency (always installed in CI), so
    this skips only when someone runs the tests without it."""
    return pytest.importorskip("torch")
