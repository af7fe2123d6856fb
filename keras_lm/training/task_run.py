"""What a `keras-lm train --task=NAME` run does differently: data, tokenizer, scores.

A task run trains on a synthetic source (`keras_lm.data.synthetic`) instead
of text files. Its tokenizer is an `IdTokenizer`: the task's ids (0 .. V-1,
named `0`, `1`, ... or, for addition, `0`-`9 + = ;`) then `<pad> <bos> <eos>
<unk>`, so the model has V + 4 ids. Its final evaluation scores the answer
positions of a held-out stream (`keras_lm.probes.evaluate_task`) and writes
exact match, token accuracy, token edit distance and answer log-likelihood
into metrics.json.

Example:
    from keras_lm.training import TrainConfig, train
    train(TrainConfig(task="mqar", task_args={"mqar_num_pairs": 4}, preset="tiny",
                      sequence_length=32, vocab_size=64, steps=50, output_dir="/tmp/mqar"))
"""

from keras_lm.data.synthetic import Task, task_dataset, task_tokenizer, training_pairs
from keras_lm.errors import UsageError
from keras_lm.scoring import evaluate_task

# Task parameters: the `keras-lm train` flags (and `TrainConfig.task_args` keys).
TASK_ARGS = ("induction_min_length", "induction_max_length", "mqar_num_pairs", "fewshot_k",
             "fewshot_labels", "addition_digits", "addition_reverse")
# Batches of the held-out stream scored at the end of a run.
FINAL_EVAL_BATCHES = 32


def task_from_config(config):
    """The `Task` of a `TrainConfig` (raises UsageError naming the bad flag)."""
    for name in config.task_args:
        if name not in TASK_ARGS:
            raise UsageError(f"--task_args: unknown task parameter {name!r}; "
                             f"choose from {', '.join(TASK_ARGS)}")
    return Task(config.task, config.sequence_length, config.vocab_size, **config.task_args)


def task_datasets(task, config, pad_id):
    """`(train, validation)` datasets of `(inputs, targets)` for `model.fit`.

    Validation is `config.val_steps` batches of its own random stream,
    cached (the same batches at every interval).
    """
    train = training_pairs(task_dataset(task, config.batch_size, seed=config.seed), task, pad_id)
    val = task_dataset(task, config.batch_size, seed=config.seed, split="validation",
                       num_batches=config.val_steps)
    val = training_pairs(val, task, pad_id).cache()
    for _ in val:  # fill the cache now, whole
        pass
    return train, val


def task_probe_text(task, tokenizer, length=24):
    """A short sequence of the task as text: what the attention maps show."""
    import numpy as np

    batch = task.sample(np.random.default_rng(0), 1)
    return tokenizer.decode_text(batch["inputs"][0, :length])


def final_task_scores(model, task, config):
    """The answer scores of the finished model on the held-out (`test`) stream."""
    return evaluate_task(model, task, batch_size=config.batch_size,
                         num_batches=FINAL_EVAL_BATCHES, seed=config.seed, split="test")


__all__ = ["TASK_ARGS", "final_task_scores", "task_datasets", "task_from_config",
           "task_probe_text", "task_tokenizer"]
