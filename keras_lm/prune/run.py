"""One pruning run: what `keras-lm prune` does, top to bottom.

Loads a trained run (the base, never changed), measures each unit's
importance on windows of the base's training text (its validation text stays
unseen, so the scores after pruning are honest), builds the smaller model,
optionally recovers it with a short fine-tune on the base's training text
(`keras_lm.adaptation.finetune`, the run directory, callbacks and console of
`keras-lm finetune`), and writes a normal run directory: `model.keras`,
`tokenizer.json`, `config.json` (the base's data settings, `run_kind:
prune`, the base and the pruning), `metrics.json` (validation bits per byte
of the base, of the pruned model, and after recovery). `eval`, `generate`,
`export` and `probe` read it like any other.
"""

import os
import shlex
import time

from keras_lm import data
from keras_lm.adaptation.config import FinetuneConfig
from keras_lm.adaptation.finetune import finetune
from keras_lm.errors import UsageError
from keras_lm.io_utils import write_json
from keras_lm.model_dir import CONFIG_FILE, load, run_files
from keras_lm.prune.structured import check_sparsity, prune
from keras_lm.scoring import evaluate_files
from keras_lm.training.console import Console, format_duration
from keras_lm.training.distribute import make_strategy, weights_digest
from keras_lm.training.run_directory import METRICS_FILE, RunDirectory
from keras_lm.training.sources import FINAL_EVAL_TOKENS

# The base run's settings that say which text it trained and validated on:
# the pruned run records them as they were, so `eval` finds the same split.
DATA_SETTINGS = ("corpus", "train_files", "val_files", "validation_fraction",
                 "validation_split", "min_validation_bytes")


def prune_run(model_dir, output_dir, sparsity, recover_steps=0, importance_batches=8,
              batch_size=8, learning_rate=None, seed=0, verbose=1):
    """Prunes the run in `model_dir` into `output_dir`; returns the metrics dict.

    Every check runs before anything is written. Errors are `UsageError`s
    naming the argument.

    Example (not run here: it reads a trained run):
        from keras_lm.prune.run import prune_run
        prune_run("saved_models/quickstart", "saved_models/pruned", 0.25, recover_steps=200)
    """
    started = time.time()
    check_arguments(model_dir, output_dir, sparsity, recover_steps, importance_batches,
                    batch_size)
    console = Console(verbose)
    base = load(model_dir, argument="model_dir")
    if not (hasattr(base, "blocks") or hasattr(base, "lstm_layers")):
        raise UsageError(f"model_dir={model_dir}: a {type(base).__name__}; pruning needs a "
                         "language model run (Transformer or LSTM)", argument="model_dir")
    if getattr(base, "value_embeddings", 0):
        # Its tables are as wide as the attention's values, which removing heads narrows.
        raise UsageError(f"model_dir={model_dir}: its value_embeddings={base.value_embeddings} "
                         "tables have the attention's value width, which pruning heads would "
                         "change; pruning does not cut them", argument="model_dir")
    tokenizer, base_config = base.tokenizer, base.run_config
    train_files, val_files = run_files(base_config)
    windows = data.sample_windows(train_files, tokenizer, base.sequence_length,
                                  importance_batches * batch_size, argument="model_dir")
    tokens_per_byte = data.tokens_per_byte(val_files, tokenizer)
    base_bpb = _base_bits_per_byte(model_dir, base, tokenizer, val_files, batch_size,
                                   tokens_per_byte)
    model, report = prune(base, sparsity, windows, batch_size=batch_size)
    report.update(importance_batches=importance_batches, batch_size=batch_size,
                  importance_windows=len(windows), recover_steps=recover_steps)
    model.tokenizer, model.run_config = tokenizer, base_config
    pruned_bpb = _bits_per_byte(model, tokenizer, val_files, batch_size, tokens_per_byte)
    console.line(f"pruned {model_dir}: {report['removed_share']:.1%} of the prunable "
                 f"parameters removed ({report['num_parameters_before']:,} -> "
                 f"{report['num_parameters_after']:,} parameters); kept "
                 f"{_sizes(report['kept'])}")
    console.line(f"validation bits per byte: {base_bpb:.3f} base, {pruned_bpb:.3f} pruned")
    record = {"run_kind": "prune",
              "base": {"model_dir": os.path.abspath(model_dir),
                       "weights_digest": weights_digest(base)},
              "prune": report}
    scores = {"base_val_bits_per_byte": base_bpb, "pruned_val_bits_per_byte": pruned_bpb}
    if recover_steps:
        metrics = _recover(model, model_dir, output_dir, base_config, recover_steps,
                           batch_size, learning_rate, seed, verbose)
        console.line(f"after {recover_steps} recovery steps: "
                     f"{metrics['val_bits_per_byte']:.3f} bits per byte")
        run_dir = RunDirectory(output_dir, make_strategy("default"))
        config = _read_json(run_dir.path(CONFIG_FILE))
    else:
        run_dir = RunDirectory(output_dir, make_strategy("default"))
        run_dir.prepare()
        config = dict(base_config)
        run_dir.start(config, tokenizer)
        run_dir.save_model(model)
        metrics = {"val_bits_per_byte": pruned_bpb, "num_parameters": model.count_params()}
    config.update({k: base_config[k] for k in DATA_SETTINGS if k in base_config})
    config.update(record, model_config=model.get_config(), num_parameters=model.count_params())
    write_json(run_dir.path(CONFIG_FILE), config)
    metrics.update(scores, prune=report, wall_time_seconds=time.time() - started)
    write_json(run_dir.path(METRICS_FILE), metrics)
    console.line(summary(output_dir, metrics))
    return metrics


def check_arguments(model_dir, output_dir, sparsity, recover_steps, importance_batches,
                    batch_size):
    """The checks that need no model; raises UsageError naming the argument."""
    check_sparsity(sparsity)
    for name, value, least in (("recover_steps", recover_steps, 0),
                               ("importance_batches", importance_batches, 1),
                               ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"{name} must be an integer >= {least}, got {value!r}",
                             argument=name)
    if not output_dir:
        raise UsageError("output_dir: give the pruned run's directory (pruning never "
                         "writes into its base)", argument="output_dir")
    if _same_path(output_dir, model_dir):
        raise UsageError(f"output_dir={output_dir}: is the base model's directory; pruning "
                         "never changes its base, choose another", argument="output_dir")


def _recover(model, model_dir, output_dir, base_config, steps, batch_size, learning_rate,
             seed, verbose):
    """`keras-lm finetune` on the base's training text, starting from `model`."""
    settings = {k: base_config[k] for k in ("corpus", "train_files", "val_files",
                                             "validation_fraction") if base_config.get(k)}
    if not settings.get("train_files"):
        # A built-in corpus: its resolved files, listed (fine-tuning reads files).
        train, val = run_files(base_config)
        settings.update(train_files=",".join(map(str, train)),
                        val_files=",".join(map(str, val)))
    config = FinetuneConfig(base_dir=model_dir, output_dir=output_dir, steps=steps,
                            eval_interval=steps, batch_size=batch_size,
                            learning_rate=learning_rate, seed=seed, verbose=verbose,
                            val_steps=4, samples=False, hparams=False, **settings)
    return finetune(config, model=model)


def _base_bits_per_byte(model_dir, base, tokenizer, files, batch_size, tokens_per_byte):
    """The base's validation bits per byte: as its run recorded it, else measured.

    Training and fine-tuning record `val_bits_per_byte` measured the way
    `_bits_per_byte` measures it (the same files and token budget), so the
    base need not be scored again.
    """
    path = os.path.join(model_dir, METRICS_FILE)
    if os.path.isfile(path):
        recorded = _read_json(path).get("val_bits_per_byte")
        if recorded is not None:
            return float(recorded)
    return _bits_per_byte(base, tokenizer, files, batch_size, tokens_per_byte)


def _bits_per_byte(model, tokenizer, files, batch_size, tokens_per_byte):
    return evaluate_files(model, tokenizer, files, batch_size=batch_size,
                          tokens_per_byte=tokens_per_byte,
                          max_tokens=FINAL_EVAL_TOKENS)["bits_per_byte"]


def _sizes(kept):
    return ", ".join(f"{name} {value}" for name, value in kept.items())


def summary(output_dir, metrics):
    directory = shlex.quote(str(output_dir))
    return "\n".join([
        (f"done in {format_duration(metrics['wall_time_seconds'])}; outputs in {output_dir}: "
         "model.keras, tokenizer.json, config.json, metrics.json"),
        "next:", f"  keras-lm generate --model_dir={directory} --prompt='...'",
        f"  keras-lm eval --model_dir={directory}",
        f"  keras-lm export --model_dir={directory}"])


def _read_json(path):
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _same_path(a, b):
    return os.path.realpath(os.path.abspath(a)) == os.path.realpath(os.path.abspath(b))
