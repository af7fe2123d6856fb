"""Training under tf.distribute on this CPU machine, in fresh processes.

Logical devices and multi-worker collectives must be configured before
TensorFlow starts, so every run here is its own `keras-lm train` process.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import TINY

# No views but the samples: they are tested elsewhere, and cost seconds here.
QUIET = ["--noattention_maps", "--noposition_loss", "--noembedding_projector", "--nohparams"]


def start(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "keras_lm.cli.main", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def finish(process, timeout=400):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


def interval_figures(output_dir, name):
    """The values of `name` (`loss`, `gradient_norm`, `val_loss`) at each evaluation,
    as TensorBoard recorded them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import tensorflow as tf

    run, tag = ("validation", "epoch_loss") if name == "val_loss" else ("train", f"epoch_{name}")
    events = EventAccumulator(str(output_dir / "logs" / run), size_guidance={"tensors": 0})
    return [float(tf.make_ndarray(e.tensor_proto)) for e in events.Reload().Tensors(tag)]


def evaluation_lines(stdout):
    """The console's line of each evaluation (`step N  ...`)."""
    return [line for line in stdout.splitlines() if line.startswith("step ")]


def corpus_args(files):
    return [f"--train_files={','.join(files[:4])}", f"--val_files={files[4]}"]


@pytest.mark.slow  # minutes on 2 cores: run with `pytest -m slow`
def test_mirrored_on_two_logical_cpus_matches_one_device(tmp_path):
    from conftest import write_corpus

    files = write_corpus(str(tmp_path / "corpus"), num_files=5)
    # Samples under a strategy are checked in the multi-worker test.
    common = [*TINY, *QUIET, "--nosamples", *corpus_args(files), "--steps=4", "--eval_interval=2"]
    single = start([*common, f"--output_dir={tmp_path / 'one'}"])
    mirrored = start([*common, "--strategy=mirrored", "--devices=CPU:0,CPU:1",
                      f"--output_dir={tmp_path / 'two'}"])
    finish(single), finish(mirrored)

    config = json.loads((tmp_path / "two" / "config.json").read_text())["distribute"]
    assert config["num_replicas"] == 2 and config["per_replica_batch_size"] == 2
    assert config["global_batch_size"] == 4 and config["auto_shard_policy"].startswith("DATA")
    assert config["learning_rate"] == 3e-3  # the recipe's, not scaled
    # Same global batches, same seed: the same training, to float rounding.
    for name in ("loss", "gradient_norm", "val_loss"):
        one = interval_figures(tmp_path / "one", name)
        two = interval_figures(tmp_path / "two", name)
        assert len(one) == len(two) == 2, (name, one, two)
        assert two == pytest.approx(one, rel=1e-4, abs=1e-4), name
    # The gradients were clipped (clipnorm 1.0): the clip of the summed
    # gradients is what makes the two runs agree.
    assert interval_figures(tmp_path / "one", "gradient_norm")[0] > 1.0
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    assert two["steps"] == one["steps"] == 4
    assert (tmp_path / "two" / "model.keras").is_file()


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_cluster(args):
    """Two `multi_worker` processes on free localhost ports; worker 0 is the chief."""
    addresses = [f"localhost:{port}" for port in free_ports(2)]
    return [
        start(args, env={"TF_CONFIG": json.dumps({"cluster": {"worker": addresses},
                                                  "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]


def digest_of(stdout):
    return re.findall(r"final weights digest: ([0-9a-f]{64})", stdout)[-1]


@pytest.mark.slow  # minutes on 2 cores: run with `pytest -m slow`
def test_multi_worker_interrupted_then_resumed(tmp_path):
    from conftest import write_corpus

    files = write_corpus(str(tmp_path / "corpus"), num_files=5)
    output = tmp_path / "out"
    args = [*TINY, *QUIET, *corpus_args(files), "--steps=8", "--eval_interval=2",
            "--strategy=multi_worker", f"--output_dir={output}"]

    # 1. Interrupt both workers (SIGKILL, as a lost machine) after the first backup.
    workers = start_cluster(args)
    metadata = output / "backup" / "training_metadata.json"
    deadline = time.time() + 300
    while not metadata.exists() and time.time() < deadline:
        assert all(w.poll() is None for w in workers), workers[0].communicate()[1][-3000:]
        time.sleep(0.2)
    for w in workers:
        w.send_signal(signal.SIGKILL)
        w.communicate()
    assert metadata.exists() and not (output / "model.keras").exists()
    interrupted_at = json.loads(metadata.read_text())["epoch"]
    assert 1 <= interrupted_at < 4

    # 2. The same command resumes both from the chief's backup and finishes.
    workers = start_cluster(args)
    chief_out, other_out = (finish(w) for w in workers)
    for out in (chief_out, other_out):
        assert "resuming from the backup" in out
    # Only the epochs left were trained.
    assert len(evaluation_lines(chief_out)) == 4 - interrupted_at

    # The chief saved what the other worker holds at the end, bit for bit.
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["weights_digest"] == digest_of(chief_out) == digest_of(other_out)
    assert metrics["steps"] == 8 and metrics["tokens_seen"] == 8 * 4 * 32
    for name in ("model.keras", "tokenizer.json", "config.json", "metrics.json",
                 "samples.txt", "checkpoints/best.keras"):
        assert (output / name).is_file(), name
    assert any((output / "logs" / "train").iterdir())
    assert any((output / "logs" / "validation").iterdir())
    assert not (output / "backup").exists()  # removed once the run completed
    assert not [p for p in os.listdir(output) if p.startswith(".")]  # no worker temp dirs
    config = json.loads((output / "config.json").read_text())["distribute"]
    assert (config["num_workers"], config["num_replicas"], config["task_index"]) == (2, 2, 0)
    assert config["auto_shard_policy"] == "DATA"

    # The saved model is the one trained: its weights give the same digest.
    import keras

    from keras_lm.training.distribute import weights_digest

    saved = keras.saving.load_model(output / "model.keras")
    assert weights_digest(saved) == metrics["weights_digest"]
