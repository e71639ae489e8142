"""Shared fixtures: where the repository's test data and the built CLI are."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

SOURCE = pathlib.Path(os.environ.get("PROVNN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
DATA = SOURCE / "tests" / "data"


def cli_path():
    """The provnn binary of this build (PROVNN_CLI, set by ctest)."""
    return os.environ.get("PROVNN_CLI")


@pytest.fixture(scope="session")
def data():
    return DATA


@pytest.fixture(scope="session")
def cli():
    path = cli_path()
    if not path or not os.path.exists(path):
        pytest.skip("PROVNN_CLI is not set (run through ctest to compare with the CLI)")
    return path


def run_cli_json(cli, *args):
    out = subprocess.run([cli, *map(str, args), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def load_npy(path):
    return np.load(path).astype(np.float64)
