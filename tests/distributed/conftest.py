"""Fixtures for tests/distributed: a small generated-digits LMDB, and rank processes that
import the caffeonspark under test. The LeNet solver files are written by lenet_files.py (a
module of its own: `from conftest import ...` would find whichever conftest was imported
first when several test folders run together)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import caffeonspark
from caffeonspark.data.convert_mnist import prepare_mnist_lmdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comm"))  # ranks.py
# The caffeonspark under test (checkout python/ in development, site-packages after
# `pip install`): rank processes must import the same one.
PYTHON_DIR = Path(caffeonspark.__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    return prepare_mnist_lmdb(tmp_path_factory.mktemp("digits"), n_train=1024, n_test=200)


@pytest.fixture(autouse=True)
def worker_pythonpath(monkeypatch):
    """Rank processes import the caffeonspark under test."""
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PYTHON_DIR), path]))
