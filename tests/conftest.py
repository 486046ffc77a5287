"""Fixtures shared across test modules (helpers live in plain modules: exported.py,
rosutil.py)."""

from __future__ import annotations

import pytest
import torch
from exported import get_model


@pytest.fixture
def one_thread():
    """Torch on one thread; the CLIs called in-process set 2, put it back. Modules that
    want it for every test say ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def models(tmp_path_factory):
    """``models(name)``: the session's trained and exported policy ``name``
    (exported.SPECS), built on first use."""
    return lambda name: get_model(name, tmp_path_factory)
