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


@pytest.fixture(scope="module")
def one_thread():
    """Batches here are a few small images: one intra-op thread beats two that wait on other
    processes of a loaded 2-core machine (one flower forward: ~8 ms against ~200 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
