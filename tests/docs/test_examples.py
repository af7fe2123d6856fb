"""The example scripts run as a user runs them (slow: a few minutes)."""

import os
import subprocess
import sys

import pytest

from conftest import write_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_example(script, *args, cwd):
    """Runs `examples/<script>` as a user does, with this checkout's keras_lm."""
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script), *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHONPATH": ROOT},
    )


def save_tiny_base(directory):
    """A base run directory: an untrained tiny Transformer (context 64) and the byte tokenizer."""
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    directory.mkdir()
    TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=64,
                              pad_id=256).save(str(directory / "model.keras"))
    ByteTokenizer().save(str(directory / "tokenizer.json"))
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train_transformer.py", "train_lstm.py"])
def test_example_trains_evaluates_and_generates(script, tmp_path):
    files = write_corpus(str(tmp_path / "corpus"), num_files=6, lines=400)
    result = run_example(script, *files, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bits_per_byte" in result.stdout
    assert list(tmp_path.glob("*.keras"))


@pytest.mark.slow
def test_classifier_example_fits_and_saves(tmp_path):
    import json

    base = save_tiny_base(tmp_path / "base")
    with open(tmp_path / "labels.jsonl", "w") as f:
        for i in range(60):
            f.write(json.dumps({"text": ("meow " if i % 2 else "woof ") * 3,
                                "label": "cat" if i % 2 else "dog"}) + "\n")
    result = run_example("classifier.py", base, tmp_path / "labels.jsonl", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'accuracy'" in result.stdout and (tmp_path / "classifier_example.keras").exists()


@pytest.mark.slow
def test_finetune_pairs_example_fits_lora_and_saves(tmp_path):
    import ast
    import json

    base = save_tiny_base(tmp_path / "base")
    with open(tmp_path / "pairs.jsonl", "w") as f:
        for a in range(40):
            f.write(json.dumps({"prompt": f"{a}+{a % 7}", "response": str(a + a % 7)}) + "\n")
    result = run_example("finetune_pairs.py", base, tmp_path / "pairs.jsonl", 4, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = {line.split(":", 1)[0]: ast.literal_eval(line.split(":", 1)[1].strip())
              for line in result.stdout.splitlines() if line.startswith(("before:", "after:"))}
    assert scores["before"]["examples"] == scores["after"]["examples"] > 0
    # The LoRA adapters trained (the scores see them) and were merged on saving.
    assert scores["after"]["response_loss"] != scores["before"]["response_loss"]
    assert (tmp_path / "finetuned_pairs.keras").exists()
