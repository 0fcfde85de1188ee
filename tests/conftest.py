"""Shared fixtures: small data sets and the shipped models, built once per test session."""
import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def single_test():
    from xai_lab import data
    return data.flowers(600, "single", seed=21, split="test")


@pytest.fixture(scope="session")
def single_model():
    from xai_lab import models
    return models.load("single")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)
