"""Makes training/ importable (its modules import each other by plain name, as the CLIs run)."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _seeded():
    # Every test starts from the same RNG state, so results do not depend on test order.
    torch.manual_seed(0)
    yield
