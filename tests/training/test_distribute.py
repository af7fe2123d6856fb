"""`--strategy` / `--devices` / TF_CONFIG: parsing and one-line errors (exit 2).

Everything here fails before a strategy is created, so it runs in this
process; the runs themselves are in test_distribute_training.py.
"""

import json

import pytest

from conftest import TINY, assert_one_line_usage_error, keras_lm, run_in_process
from keras_lm.errors import UsageError
from keras_lm.training.distribute import make_strategy, parse_devices, read_tf_config

CLUSTER = {"worker": ["localhost:12345", "localhost:12346"]}


def tf_config(task_type="worker", index=0, cluster=CLUSTER):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def train_args(corpus, *extra):
    return ("train", *TINY, f"--train_files={','.join(corpus[:3])}", f"--val_files={corpus[3]}",
            *extra)


@pytest.mark.parametrize("environ, message", [
    ({}, "TF_CONFIG environment variable, which is not set"),
    ({"TF_CONFIG": "{'cluster': oops"}, "TF_CONFIG is not valid JSON"),
    ({"TF_CONFIG": tf_config(index=2)},
     "TF_CONFIG: task index 2 is out of range: the cluster has 2 'worker' task(s)"),
    ({"TF_CONFIG": tf_config(task_type="ps")}, "task type must be 'chief' or 'worker', got 'ps'"),
    ({"TF_CONFIG": json.dumps({"task": {"type": "worker", "index": 0}})}, "'cluster' object"),
])
def test_multi_worker_needs_a_valid_tf_config(capsys, monkeypatch, corpus, environ, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_in_process(capsys, *train_args(corpus, "--strategy=multi_worker"))
    assert_one_line_usage_error(code, err, "train", message)


@pytest.mark.parametrize("flags, message", [
    (["--strategy=mirrored", "--devices=CPU:0,CPU:1", "--batch_size=5"],
     "--batch_size=5 (the global batch) is not divisible by the 2 replicas of strategy=mirrored"),
    (["--strategy=mirrored", "--devices=GPU:0"],
     "--devices: GPU:0 does not exist; this machine has 0 GPU(s)"),
    (["--strategy=mirrored", "--devices=CPU:0,CPU:999"], "--devices: CPU:999 does not exist"),
    (["--strategy=mirrored", "--devices=XPU:0"], "expected names like CPU:0,CPU:1"),
    (["--strategy=mirrored", "--devices=CPU:0,cpu:0"], "CPU:0 is named twice"),
    (["--devices=CPU:0,CPU:1"], "applies to strategy=mirrored only, got strategy=default"),
    (["--strategy=multi_worker", "--train_minutes=1"], "--train_minutes=1.0 cannot end a multi_worker"),
    (["--strategy=ring"], "--strategy"),
])
def test_bad_strategy_flags_are_one_line_errors(capsys, monkeypatch, corpus, flags, message):
    monkeypatch.setenv("TF_CONFIG", tf_config())
    code, _, err = run_in_process(capsys, *train_args(corpus, *flags))
    assert_one_line_usage_error(code, err, "train", message)


def test_multi_worker_batch_must_split_over_the_workers(monkeypatch):
    with pytest.raises(UsageError, match=r"^batch_size=5 .* not divisible by the 2 replicas") \
            as error:
        make_strategy("multi_worker", batch_size=5, environ={"TF_CONFIG": tf_config()})
    assert error.value.argument == "batch_size"


def test_tpu_without_a_tpu_is_one_line_error(corpus):
    # A subprocess: looking for a TPU initialises TensorFlow's runtime.
    result = keras_lm(*train_args(corpus, "--strategy=tpu"), timeout=300)
    assert_one_line_usage_error(result.returncode, result.stderr, "train",
                                "--strategy=tpu: no TPU found")


def test_tf_config_chief_and_workers():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    assert read_tf_config(tf_config("chief", 0, cluster)) == (cluster, "chief", 0)
    assert read_tf_config(tf_config("worker", 1, cluster))[1:] == ("worker", 1)
    with pytest.raises(UsageError, match="index 2 is out of range"):
        read_tf_config(tf_config("worker", 2, cluster))


def test_parse_devices_accepts_tensorflow_spellings():
    assert parse_devices("CPU:0, cpu:1") == [("CPU", 0), ("CPU", 1)]
    assert parse_devices("/device:GPU:0,/gpu:1") == [("GPU", 0), ("GPU", 1)]


def test_default_strategy_is_one_chief_replica(tmp_path):
    distribution = make_strategy("default", batch_size=3)
    assert (distribution.num_replicas, distribution.num_workers, distribution.is_chief) == (1, 1, True)
    assert distribution.write_dir(str(tmp_path)) == str(tmp_path)
    described = distribution.describe(8, 1e-3)
    assert described["per_replica_batch_size"] == 8
    assert described["learning_rate_scaling"].startswith("none")
