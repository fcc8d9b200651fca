import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def cpu_target(monkeypatch):
    """Compile-only: TileLang's target "auto" means sm_90a here (no GPU to ask)."""
    monkeypatch.setenv("TSIR_TILELANG_TARGET", "sm_90a")
