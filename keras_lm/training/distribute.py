"""Training under `tf.distribute`: one device, several, several hosts, a TPU.

`make_strategy` turns `--strategy` / `--devices` into a `Distribution`: the
`tf.distribute.Strategy` plus what a run needs to know about it (how many
replicas, which worker this process is, whether it is the chief). Build the
model and compile it inside `distribution.strategy.scope()`; `model.fit`
then runs every step on every replica. Nothing else in the run changes.

Conventions (written to `config.json` under `distribute`):

- `--batch_size` is the **global** batch: each step reads `batch_size`
  sequences in all, `batch_size / num_replicas` per replica. It must divide.
- The learning rate is **not scaled**: the same global batch gives the same
  gradient (Keras divides each replica's loss by the replica count and the
  gradients are summed), so `--learning_rate` means what it means on one
  device. Change the batch, and you retune the rate, as on one device.
- Data sharding across workers is `AutoShardPolicy.DATA`: every worker reads
  the same shuffled stream (same files, same seed) and keeps its own part of
  each global batch. FILE sharding would need at least one file per worker
  and would give workers unequal amounts of text (our files differ in size);
  on one worker (`mirrored`) no sharding happens: the global batch is split
  between the local replicas.

`--devices` syntax: comma-separated `TYPE:INDEX` names, `CPU:0,CPU:1` or
`GPU:0,GPU:1` (case-insensitive, an optional `/device:` prefix). It applies
to `--strategy=mirrored` only. A CPU is split into logical devices when more
CPUs are named than exist (this must happen before TensorFlow initialises its
runtime, so in a fresh process); at most one logical CPU per core.

Example (the same as `keras-lm train --strategy=mirrored --devices=CPU:0,CPU:1`):

    from keras_lm.data import text_dataset
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer
    from keras_lm.training import make_strategy

    distribution = make_strategy("mirrored", devices="CPU:0,CPU:1")  # first!
    tokenizer = ByteTokenizer()
    with distribution.strategy.scope():  # variables are created per replica
        model = TransformerLM.from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size)
        model.compile("adamw", learning_rate=1e-3, total_steps=100, jit_compile=False)
    dataset = text_dataset(files, tokenizer, 64, batch_size=8, shuffle=True, repeat=True)
    model.fit(distribution.shard(dataset), steps_per_epoch=100)  # 8 = global batch
"""

import dataclasses
import hashlib
import json
import os
import re
import shutil

import keras
import tensorflow as tf

from keras_lm import compat
from keras_lm.errors import UsageError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
AUTO_SHARD_POLICY = "DATA"
_DEVICE = re.compile(r"^(?:/?device:|/)?(cpu|gpu):(\d+)$", re.IGNORECASE)


@dataclasses.dataclass
class Distribution:
    """A strategy and this process's place in it.

    Attributes:
        strategy: the `tf.distribute.Strategy`.
        name: one of `STRATEGIES`.
        devices: the local devices the replicas run on (empty: TF's choice).
        num_replicas: replicas in sync over all workers.
        num_workers: processes in the cluster (1 unless `multi_worker`).
        task_type, task_index: this process's task in `TF_CONFIG`, or None.
        is_chief: whether this process writes the run's outputs.
    """

    strategy: object
    name: str = "default"
    devices: tuple = ()
    num_replicas: int = 1
    num_workers: int = 1
    task_type: str = None
    task_index: int = None
    is_chief: bool = True

    def write_dir(self, output_dir):
        """Where this process writes: `output_dir` on the chief, a temporary
        directory inside it on other workers (removed by `cleanup`).

        Every worker runs every callback (they must: some read the model in
        step with the others), so the others write somewhere harmless, the
        pattern TensorFlow's own multi-worker callbacks use.
        """
        if self.is_chief:
            return output_dir
        return os.path.join(output_dir, f".worker_temp_{self.task_type}_{self.task_index}")

    def cleanup(self, output_dir):
        """Removes a non-chief's temporary directory (nothing on the chief)."""
        if not self.is_chief:
            shutil.rmtree(self.write_dir(output_dir), ignore_errors=True)

    def check_batch_size(self, batch_size):
        """Raises UsageError unless the global batch splits evenly over the replicas."""
        _check_divisible(batch_size, self.num_replicas, self.name)

    def shard(self, dataset):
        """`dataset` with the sharding policy of these runs (see module doc)."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = getattr(
            tf.data.experimental.AutoShardPolicy, AUTO_SHARD_POLICY
        )
        return dataset.with_options(options)

    def describe(self, batch_size, learning_rate):
        """The settings `config.json` records under `distribute`."""
        return {
            "strategy": self.name,
            "devices": list(self.devices),
            "num_replicas": self.num_replicas,
            "num_workers": self.num_workers,
            "task_type": self.task_type,
            "task_index": self.task_index,
            "global_batch_size": batch_size,
            "per_replica_batch_size": batch_size // self.num_replicas,
            "learning_rate": learning_rate,
            "learning_rate_scaling": "none (the global batch sets the gradient scale)",
            "auto_shard_policy": AUTO_SHARD_POLICY if self.num_workers > 1 else
            f"{AUTO_SHARD_POLICY} (one worker: the global batch is split between replicas)",
            "gradient_norm": "global norm of the gradients summed over replicas, before clipping",
        }


def make_strategy(name="default", devices=None, batch_size=None, environ=None):
    """The `Distribution` for `--strategy=name` (and `--devices`).

    Call it first in a process: `mirrored` on logical CPUs and `multi_worker`
    configure TensorFlow's runtime, which is only possible before it starts.

    Args:
        name: `default` (no strategy: one device), `mirrored` (the devices of
            this machine), `multi_worker` (the cluster in `TF_CONFIG`) or
            `tpu` (a TPU found by `TPUClusterResolver`; `TPU_NAME`, default
            `local`, as on a TPU VM).
        devices: `mirrored` only: e.g. `"CPU:0,CPU:1"` or `"GPU:0,GPU:1"`.
        batch_size: the global batch, checked against the replica count.
        environ: the environment to read `TF_CONFIG` from (default `os.environ`).

    Raises:
        UsageError: a bad name, device, `TF_CONFIG` or batch size, or no TPU.

    Example:
    >>> distribution = make_strategy("default")
    >>> distribution.num_replicas, distribution.is_chief
    (1, True)
    """
    environ = os.environ if environ is None else environ
    check_strategy(name, devices)
    if name == "default":
        return Distribution(tf.distribute.get_strategy())
    if name == "mirrored":
        if devices and batch_size is not None:  # before the CPU is split for nothing
            _check_divisible(batch_size, len(parse_devices(devices)), name)
        names = configure_devices(parse_devices(devices)) if devices else None
        strategy = tf.distribute.MirroredStrategy(names)
        result = Distribution(strategy, name, tuple(strategy.extended.worker_devices),
                              strategy.num_replicas_in_sync)
    elif name == "multi_worker":
        cluster, task_type, task_index = read_tf_config(environ.get("TF_CONFIG"))
        workers = sum(len(cluster[t]) for t in ("chief", "worker") if t in cluster)
        if batch_size is not None:
            _check_divisible(batch_size, workers, name)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:  # TF's runtime already started in this process
            raise UsageError(f"strategy=multi_worker: {error} (start it in a fresh process)", argument="strategy")
        result = Distribution(
            strategy, name, tuple(strategy.extended.worker_devices),
            strategy.num_replicas_in_sync, workers, task_type, task_index,
            is_chief=task_type == "chief" or (task_type == "worker" and task_index == 0
                                              and "chief" not in cluster),
        )
    else:
        result = _tpu_distribution(environ.get("TPU_NAME", "local"))
    if batch_size is not None:
        result.check_batch_size(batch_size)
    return result


def check_strategy(name, devices=None, train_minutes=None):
    """The strategy settings' rules that need no TensorFlow (devices are checked later).

    Raises UsageError naming the setting: an unknown `name`, `devices` with
    another strategy than `mirrored` or in a bad syntax, and a clock
    (`train_minutes`) ending a multi-worker run.
    """
    if name not in STRATEGIES:
        raise UsageError(f"strategy: unknown value {name!r}; choose from {', '.join(STRATEGIES)}",
                         argument="strategy")
    if devices is not None:
        if name != "mirrored":
            raise UsageError(f"devices={devices!r} applies to strategy=mirrored only, got "
                             f"strategy={name}", argument="devices")
        parse_devices(devices)
    if name == "multi_worker" and train_minutes:
        # Each worker would read its own clock and stop at its own step,
        # leaving the others waiting in a collective forever.
        raise UsageError(f"train_minutes={train_minutes} cannot end a multi_worker run "
                         "(workers' clocks differ); give steps or epochs",
                         argument="train_minutes")


def parse_devices(text):
    """`"CPU:0,CPU:1"` -> `[("CPU", 0), ("CPU", 1)]`; UsageError on a bad name."""
    devices = []
    for item in (part.strip() for part in str(text).split(",")):
        match = _DEVICE.match(item)
        if not match:
            raise UsageError(
                f"devices: expected names like CPU:0,CPU:1 or GPU:0,GPU:1, got {item!r} in {text!r}", argument="devices")
        device = (match.group(1).upper(), int(match.group(2)))
        if device in devices:
            raise UsageError(f"devices: {device[0]}:{device[1]} is named twice in {text!r}", argument="devices")
        devices.append(device)
    return devices


def configure_devices(devices):
    """Checks that `devices` exist, splitting the CPU if needed; returns TF names.

    GPUs must exist physically. CPUs are logical: `CPU:3` makes the first
    physical CPU appear as 4 devices, at most one per core (more only slows a
    run down). Raises UsageError for a device that does not exist or cannot be
    made, naming it.
    """
    gpus = tf.config.list_physical_devices("GPU")
    for kind, index in devices:
        if kind == "GPU" and index >= len(gpus):
            raise UsageError(
                f"devices: GPU:{index} does not exist; this machine has {len(gpus)} GPU(s)", argument="devices")
    cpus_needed = 1 + max((index for kind, index in devices if kind == "CPU"), default=-1)
    cores = os.cpu_count() or 1
    if cpus_needed > cores:
        raise UsageError(
            f"devices: CPU:{cpus_needed - 1} does not exist; this machine has {cores} "
            f"CPU core(s), and the CPU is split into at most one logical device per core", argument="devices")
    if cpus_needed > 1:
        _split_cpu(cpus_needed)
    return [f"/device:{kind}:{index}" for kind, index in devices]


def _split_cpu(count):
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) >= count:
        return  # split already (e.g. a second run in one process)
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < count:
            raise UsageError(
                f"devices: cannot split the CPU into {count} devices: TensorFlow is already "
                f"running in this process with {have}; name them before anything else starts "
                f"TensorFlow (a fresh process)", argument="devices") from None


def read_tf_config(text):
    """Parses and checks `TF_CONFIG`; returns `(cluster, task_type, task_index)`.

    Example:
    >>> read_tf_config('{"cluster": {"worker": ["localhost:1", "localhost:2"]},'
    ...                ' "task": {"type": "worker", "index": 1}}')[1:]
    ('worker', 1)
    """
    if not text:
        raise UsageError(
            "strategy=multi_worker reads the cluster from the TF_CONFIG environment "
            "variable, which is not set (e.g. TF_CONFIG='{\"cluster\": {\"worker\": "
            "[\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}')", argument="strategy")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}): "
                         f"{text[:80]!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise UsageError(f"TF_CONFIG: expected an object with a 'cluster' object, got {text[:80]!r}")
    cluster, task = config["cluster"], config.get("task")
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise UsageError(f"TF_CONFIG: cluster[{kind!r}] must be a list of 'host:port', "
                             f"got {addresses!r}")
    if not any(cluster.get(kind) for kind in ("chief", "worker")):
        raise UsageError(f"TF_CONFIG: the cluster has no 'worker' or 'chief' task: {cluster!r}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise UsageError(f"TF_CONFIG: expected 'task': {{'type': ..., 'index': ...}}, got {task!r}")
    task_type, task_index = task["type"], task["index"]
    if task_type not in ("chief", "worker"):
        raise UsageError(f"TF_CONFIG: task type must be 'chief' or 'worker', got {task_type!r}")
    if task_type not in cluster:
        raise UsageError(f"TF_CONFIG: task type {task_type!r} is not in the cluster "
                         f"({', '.join(cluster)})")
    if not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
        raise UsageError(
            f"TF_CONFIG: task index {task_index!r} is out of range: the cluster has "
            f"{len(cluster[task_type])} {task_type!r} task(s)"
        )
    return cluster, task_type, task_index


def _tpu_distribution(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
        raise UsageError(
            f"strategy=tpu: no TPU found (TPU_NAME={tpu!r}; {type(error).__name__}: {first_line})", argument="strategy") from None
    strategy = tf.distribute.TPUStrategy(resolver)
    return Distribution(strategy, "tpu", tuple(strategy.extended.worker_devices),
                        strategy.num_replicas_in_sync)


def _check_divisible(batch_size, replicas, name):
    if batch_size % replicas:
        raise UsageError(
            f"batch_size={batch_size} (the global batch) is not divisible by the "
            f"{replicas} replicas of strategy={name}", argument="batch_size")


def weights_digest(model):
    """SHA-256 of a model's weights (shapes and bytes, in `model.weights` order).

    Two processes hold the same model exactly when their digests agree: the
    multi-worker test compares the chief's saved model with another worker's
    final weights this way. Names are left out: a model loaded in a process
    that built others before gets another name (`transformer_lm_1`).
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        value = weight.numpy()
        digest.update(f"{value.shape}:{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def backup_callback(backup_dir, restore_dir=None):
    """The resume backup: `keras.callbacks.BackupAndRestore`, two copies kept.

    On a non-chief worker, `restore_dir` is the chief's backup (a file system
    all workers see, as TensorFlow's multi-worker backup also requires): the
    worker resumes from it, so every replica starts from the same weights and
    step, and writes its own backups to `backup_dir` (its temporary
    directory) where they harm nothing.
    """
    if restore_dir is None or restore_dir == backup_dir:
        return keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True)
    return compat.RestoreFromChief(backup_dir, restore_dir)
