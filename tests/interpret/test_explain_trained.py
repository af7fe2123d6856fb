"""Slow: `keras-lm explain` on really trained runs, and docs/interpret.md as a user runs it."""

import json
import os

import numpy as np
import pytest
from conftest import keras_lm
from page_runner import run_page

pytestmark = pytest.mark.slow


def test_completeness_holds_on_a_trained_run(trained, tmp_path):
    output, _, _ = trained
    result = keras_lm("explain", f"--model_dir={output}", "--prompt=the quick brown",
                      "--target= fox", "--method=integrated_gradients", "--json",
                      f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    explanation = json.loads(result.stdout)
    change = explanation["target_logp"] - explanation["details"]["baseline_logp"]
    total = np.sum([t["score"] for t in explanation["tokens"]])
    assert np.isclose(total, change, rtol=0.01, atol=1e-3)
    assert len(explanation["agreement"]) == 3
    assert os.path.isfile(tmp_path / "explanation.html")


def test_the_interpret_page_runs(tmp_path):
    run_page(os.path.join("docs", "interpret.md"), tmp_path)
