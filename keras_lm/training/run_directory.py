"""The output directory of a training run: its paths, resuming, and workers.

Example:
>>> import tempfile
>>> from keras_lm.training.distribute import make_strategy
>>> run_dir = RunDirectory(tempfile.mkdtemp(), make_strategy("default"))
>>> run_dir.prepare()
>>> run_dir.resuming, os.path.basename(run_dir.path("metrics.json"))
(False, 'metrics.json')
"""

import os

from keras_lm.errors import UsageError
from keras_lm.io_utils import atomic_path, write_json
from keras_lm.model_dir import CONFIG_FILE, MODEL_FILE
from keras_lm.tokenizers import TOKENIZER_FILE

METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.txt"
BACKUP_DIR = "backup"


class RunDirectory:
    """Where a run writes, and whether it resumes an interrupted run.

    `root` holds the run's outputs: `model.keras`, `tokenizer.json`,
    `config.json`, `metrics.json`, `samples.txt`, `logs/`, `checkpoints/`
    and `backup/` (the resume point). Under a multi-worker strategy only the
    chief writes `root`; every other worker writes what its callbacks write
    into a temporary directory inside it (`write_dir`, removed by `cleanup`)
    and resumes from the chief's backup.
    """

    def __init__(self, root, distribution):
        self.root = root
        self.distribution = distribution
        self.write_dir = distribution.write_dir(root)
        self.backup_dir = os.path.join(root, BACKUP_DIR)
        self.resuming = os.path.isfile(os.path.join(self.backup_dir, "training_metadata.json"))

    def path(self, name):
        """The path of output `name` in the root (what the chief writes)."""
        return os.path.join(self.root, name)

    def own_path(self, name):
        """The path of output `name` where this process writes it."""
        return os.path.join(self.write_dir, name)

    def prepare(self):
        """Creates the directory this process writes, or raises UsageError."""
        prepare_output_dir(self.write_dir)

    def start(self, resolved_config, tokenizer):
        """Writes `config.json` and the tokenizer; a fresh run drops stale outputs."""
        if not self.resuming:
            for stale in (SAMPLES_FILE, METRICS_FILE):
                if os.path.exists(self.own_path(stale)):
                    os.remove(self.own_path(stale))
        write_json(self.own_path(CONFIG_FILE), resolved_config)
        tokenizer.save(self.own_path(TOKENIZER_FILE))

    def save_model(self, model):
        with atomic_path(self.path(MODEL_FILE)) as tmp:
            model.save(tmp)

    def write_metrics(self, metrics):
        write_json(self.path(METRICS_FILE), metrics)

    def cleanup(self):
        """Removes a non-chief worker's temporary directory (nothing on the chief)."""
        self.distribution.cleanup(self.root)


def prepare_output_dir(path, argument="output_dir"):
    """Creates `path` and checks that it is writable, or raises UsageError."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise UsageError(f"{argument}: {path!r} is not writable ({error.strerror})",
                         argument=argument) from None
