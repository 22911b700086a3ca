"""Shared test settings: seeded randomness, one intra-op thread, CUDA tests skipped without a GPU.

The tests run thousands of tiny matrix products; on a busy 2-core machine two intra-op threads
waiting on each other made them many times slower than one thread, so every test gets one.
"""

import os
import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _kernel_choices_in_a_temporary_folder(tmp_path_factory):
    """The speed transform remembers its kernel measurements; never in the user's home from a test."""
    saved = os.environ.get("GLASSFORMER_CACHE_DIR")
    os.environ["GLASSFORMER_CACHE_DIR"] = str(tmp_path_factory.mktemp("glassformer-cache"))
    yield
    if saved is None:
        os.environ.pop("GLASSFORMER_CACHE_DIR", None)
    else:
        os.environ["GLASSFORMER_CACHE_DIR"] = saved


@pytest.fixture(autouse=True, scope="session")
def _compiled_code_in_a_temporary_folder(tmp_path_factory):
    """torch.compile's inductor caches compiled C++ (and precompiled headers) in /tmp by default,
    shared by every process: a run under ATEN_CPU_CAPABILITY=default then picked up code built for
    AVX2 by another run and failed to compile. Each test session gets its own cache."""
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("inductor-cache"))
    yield
    if saved is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    long = os.environ.get("GLASSFORMER_LONG_TESTS") == "1"
    skip_long = pytest.mark.skip(reason="over a minute of training; run with GLASSFORMER_LONG_TESTS=1")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    # Modules with end-to-end trainings first: run in parallel (`-n auto --dist loadfile`), the
    # long ones start at once and the many quick ones fill the gaps, instead of one long module
    # starting last and running alone.
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)
    for item in items:
        if item.get_closest_marker("long") and not long:
            item.add_marker(skip_long)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
