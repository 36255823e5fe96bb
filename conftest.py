"""Shared fixtures of the library's tests (`tests/`) and the study's (`experiments/*/tests/`):
the official reference data and tiny models; `tests/helpers.py` is importable from both.

The reference data of the official release (`shared/reference`, see its README) is vendored in
`tests/data/reference` so that a clean clone tests itself; BIGR_REFERENCE points elsewhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from bigr.config import PRESETS

# Under pytest-xdist the workers share the cores: each takes its share of threads (and hands
# that to the processes its tests start), since oversubscribed OpenMP threads wait on each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _threads = max(1, (os.cpu_count() or 1) // _workers)
    torch.set_num_threads(_threads)
    os.environ["OMP_NUM_THREADS"] = str(_threads)

TESTS = Path(__file__).parent / "tests"
sys.path.insert(0, str(TESTS))  # `import helpers` in every test folder
REFERENCE = Path(os.environ.get("BIGR_REFERENCE", TESTS / "data" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert (REFERENCE / "README.md").is_file(), f"reference data not found at {REFERENCE}"
    return REFERENCE


@pytest.fixture
def tiny_bigr():
    from bigr.model import BiGR

    torch.manual_seed(0)
    return BiGR(PRESETS["bigr-tiny"]).eval()


@pytest.fixture
def random_bigr():
    """A tiny BiGR with every parameter non-zero (`helpers.random_bigr_model`)."""
    from helpers import random_bigr_model

    return random_bigr_model()


@pytest.fixture
def tiny_tokenizer():
    from helpers import tiny_tokenizer_model

    return tiny_tokenizer_model()


# Under CI (CI=true) every optional component is installed by scripts/test.sh, so a test that
# skips for a missing one is a failure there, not a silent skip.
_CI = os.environ.get("CI") == "true"


def pytest_collectreport(report):
    if _CI and report.skipped:
        report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _CI and report.skipped:
        report.outcome = "failed"
