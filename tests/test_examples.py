"""The example scripts run as a user runs them (slow: a few minutes)."""

import os
import subprocess
import sys

import pytest

from conftest import write_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train_transformer.py", "train_lstm.py"])
def test_example_trains_evaluates_and_generates(script, tmp_path):
    files = write_corpus(str(tmp_path / "corpus"), num_files=6, lines=400)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script), *files],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bits_per_byte" in result.stdout
    assert list(tmp_path.glob("*.keras"))
