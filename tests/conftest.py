"""Shared fixtures: small real text corpora written on the fly."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

WORDS = "the quick brown fox jumps over a lazy dog while seven tiny models learn".split()


def write_corpus(directory, num_files=4, lines=60, seed=0):
    """Writes `num_files` text files of simple, learnable English-like lines."""
    import random

    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(num_files):
        text = "".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + ".\n"
            for _ in range(lines)
        )
        path = os.path.join(directory, f"doc_{i}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths.append(path)
    return paths


@pytest.fixture
def corpus(tmp_path):
    """Four small text files; returns their paths."""
    return write_corpus(str(tmp_path / "corpus"))
