"""Fine-tuning a classifier head on a trained language model: `keras-lm finetune --head=classifier`.

`finetune_classifier(ClassifierConfig(...))` reads labelled texts (a
`ClassifierSource`), builds a `TextClassifier` on the base run's model
(loaded by `keras_lm.model_dir.load`: its weights, a new head), trains the
whole of it (or, with `lora_rank`, LoRA adapters on the backbone and the
whole head) and writes a run directory that `keras-lm eval`, `classify` and
`export` read. It is one run like `train` and `finetune`: the same
`RunDirectory`, `run_callbacks` (TensorBoard, the best checkpoint, the
resume backup, the stop on divergence) and console, so an interrupted run
resumes from its last backup when started again. The outputs:

- `model.keras` (the classifier, its labels in its config), `tokenizer.json`
  (the base's);
- `config.json`: `head: "classifier"`, the base (`base_model_dir`, its
  weights digest), the labels, the keys, the settings and the validation
  choice (`validation`: `val_data` or `hash_10_percent`);
- `validation.jsonl`: the validation rows themselves, so `eval` and
  `export` score exactly them, whatever happens to the data file later;
- `metrics.json`, `confusion_matrix.png`, `logs/` (TensorBoard: the
  training curves and the final confusion matrix), `checkpoints/`, `backup/`.

The base directory is only read. Every check (the settings, the base, the
rows, LoRA) runs before anything is written.

Example (not run here: it trains):
    from keras_lm.adaptation.classifier import finetune_classifier
    from keras_lm.adaptation.classifier_config import ClassifierConfig
    metrics = finetune_classifier(ClassifierConfig(
        base_dir="saved_models/quickstart", output_dir="saved_models/labels",
        data="labels.csv", steps=300))
    metrics["val_accuracy"]
"""

import os
import shlex
import time

import keras
import numpy as np

from keras_lm import compat
from keras_lm.adaptation.classifier_config import HEAD, ClassifierConfig
from keras_lm.adaptation.classifier_metrics import write_confusion
from keras_lm.adaptation.classifier_run import VALIDATION_FILE
from keras_lm.adaptation.classifier_source import ClassifierSource
from keras_lm.adaptation.labeled_data import labeled_split, write_rows  # noqa: F401
from keras_lm.adaptation.lora import count_trainable, enable_lora, is_lora_weight
from keras_lm.model_dir import load
from keras_lm.models import TextClassifier
from keras_lm.optimizers import make_optimizer
from keras_lm.training.callbacks import run_callbacks
from keras_lm.training.console import Console, ProgressLog, format_duration
from keras_lm.training.distribute import make_strategy, weights_digest
from keras_lm.training.run_directory import RunDirectory
from keras_lm.training.trainer import run_length, wall_clock

# What the console prints at each evaluation besides the losses.
PROGRESS_METRICS = (("accuracy", "accuracy"), ("val_accuracy", "val accuracy"))


def finetune_classifier(config, callbacks=()):
    """Runs the classifier run `config` (a `ClassifierConfig`) describes; returns its metrics.

    `callbacks`: more Keras callbacks for `fit`, as `train(config, callbacks)`.
    Running the same config again after an interruption resumes from the
    last backup (`output_dir/backup`). Returns a dict: `val_accuracy`,
    `val_macro_f1`, `val_loss`, `val_per_class`, `train_loss`,
    `train_accuracy`, `steps`, `num_parameters`, `trainable_parameters`,
    `labels`, `train_examples`, `val_examples`, `output_dir`,
    `wall_time_seconds`.
    """
    started = time.time()
    classifier, source, lora, base_digest = prepare(config)
    tokenizer = classifier.tokenizer
    run_dir = RunDirectory(config.output_dir, make_strategy("default"))
    run_dir.prepare()
    steps, interval = run_length(config, source)
    clock = wall_clock(config, started)
    compile_classifier(config, classifier, steps, clock)
    resolved = resolved_config(config, source, classifier, lora, base_digest, steps, interval)
    run_dir.start(resolved, tokenizer)
    write_rows(run_dir.path(VALIDATION_FILE), source.val_rows, config.text_key,
               config.label_key)
    console = Console(config.verbose)
    console.line(start_line(config, source, classifier, lora, steps, clock))
    if source.split_note:
        console.line(source.split_note)
    train_ds, val_ds = source.datasets(tokenizer, run_dir.resuming)
    progress = ProgressLog(console, steps, config.batch_size * config.sequence_length,
                           clock.seconds if clock else None, started, metrics=PROGRESS_METRICS)
    run = run_callbacks(config, source, run_dir, tokenizer, val_ds,
                        resolved if config.hparams else None, clock, progress, callbacks)
    if run_dir.resuming:
        console.line(f"resuming from the backup in {run_dir.backup_dir}")
    with compat.quiet_keras_data_warnings():
        history = classifier.fit(train_ds, epochs=steps // interval, steps_per_epoch=interval,
                                 validation_data=val_ds, callbacks=run.all, verbose=0,
                                 shuffle=False)  # the dataset shuffles
    run_dir.save_model(classifier)  # Keras' saving merges LoRA's updates into the kernels
    trained_steps = int(classifier.optimizer.iterations.numpy())
    console.line(source.final_scores_note)
    report = source.evaluate(classifier, tokenizer)
    write_confusion(run_dir.root, report, f"validation: accuracy {report['accuracy']:.3f}, "
                    f"macro-F1 {report['macro_f1']:.3f}", step=trained_steps)
    metrics = {**source.final_scores(classifier, tokenizer, history, report),
               "train_loss": run.logs.last_full_interval_loss(interval),
               "steps": trained_steps,
               "num_parameters": resolved["num_parameters"],
               "trainable_parameters": resolved["trainable_parameters"],
               "stopped_by_clock": bool(clock and clock.stopped_at_step),
               "output_dir": config.output_dir}
    if run.hparams:
        run.hparams.write_metrics(metrics, trained_steps)
    metrics["wall_time_seconds"] = time.time() - started
    run_dir.write_metrics(metrics)
    console.line(summary(source, metrics, report, run_dir.root))
    return metrics


def prepare(config):
    """`(classifier, source, lora, base_digest)`: every check, and nothing written.

    The settings, then the base (`keras_lm.model_dir.load`), the rows (read,
    split and encoded by the source), the run's length, LoRA; then the
    classifier on the base, its head new (seeded by `config.seed`).
    """
    if not isinstance(config, ClassifierConfig):
        raise TypeError(f"config must be a ClassifierConfig, got {type(config).__name__} "
                        "(finetune_classifier(ClassifierConfig(base_dir=..., output_dir=..., "
                        "data=...)))")
    config.check_settings()
    backbone = load(config.base_dir, argument="base_dir")
    tokenizer = backbone.tokenizer
    config.resolve_from_base(backbone, tokenizer, backbone.run_config)
    source = ClassifierSource(config, tokenizer)
    config.resolve_length(len(source.train_rows), source.train_ids.shape[1])
    base_digest = weights_digest(backbone)
    lora = None
    if config.lora_rank is not None:
        # The backbone's targets get adapters and every other backbone weight
        # is frozen; the head, made below, is new and trains fully.
        lora = enable_lora(backbone, config.lora_rank, config.lora_alpha, config.lora_targets)
    keras.utils.set_random_seed(config.seed)
    classifier = TextClassifier(backbone, source.labels, pooling=config.pooling,
                                sequence_length=config.max_length, dropout=config.dropout)
    classifier.tokenizer = tokenizer
    return classifier, source, lora, base_digest


def compile_classifier(config, classifier, steps, clock):
    """Compiles `classifier` with the run's optimizer and schedule (a constant rate that the
    clock sets when the run is timed); cross-entropy over the labels and accuracy."""
    optimizer = make_optimizer(
        config.optimizer, config.learning_rate, None if clock else steps, config.warmup_steps,
        config.weight_decay, config.clipnorm, beta2=config.beta2, schedule=config.schedule,
        decay_fraction=config.decay_fraction, adam_learning_rate=config.adam_learning_rate)
    jit = config.jit_compile if config.jit_compile is not None else "auto"
    classifier.compile(optimizer, jit_compile=jit)


def resolved_config(config, source, classifier, lora, base_digest, steps, interval):
    """What config.json records: the settings, the base, the labels and the validation rows."""
    return {
        **config.to_dict(), **source.facts(),
        "head": HEAD, "run_kind": "finetune", "finetune_kind": HEAD,
        "base_model_dir": os.path.abspath(config.base_dir),
        "base_weights_digest": base_digest,
        "base": {"model_dir": os.path.abspath(config.base_dir), "weights_digest": base_digest},
        "validation_file": VALIDATION_FILE,
        "lora": lora, "steps": steps, "eval_interval": interval,
        "num_parameters": count_parameters(classifier),  # as saved: without adapters
        "trainable_parameters": count_trainable(classifier),
        "model_config": classifier.get_config(),
        "distribute": {"strategy": "default", "jit_compile": bool(classifier.jit_compile)},
    }


def start_line(config, source, classifier, lora, steps, clock):
    length = (f"{config.train_minutes} minutes (at most {steps} steps)" if clock
              else f"{steps} steps")
    return (f"classifier ({config.pooling} pooling) on {config.base_dir}: "
            f"{trained_line(classifier, lora)}; {source.description()}; training for "
            f"{length} of {config.batch_size}")


def trained_line(classifier, lora):
    """What trains, for the console: every weight, or LoRA's adapters and the head."""
    trainable = count_trainable(classifier)
    if not lora:
        return f"every weight: {trainable:,} trainable parameters"
    total = count_parameters(classifier)
    return (f"LoRA rank {lora['rank']} (alpha {lora['alpha']:g}) on "
            f"{','.join(lora['targets'])} and the new head: {trainable:,} trainable of "
            f"{total:,} parameters ({trainable / total:.2%})")


def count_parameters(model):
    """The parameters of `model` without LoRA's adapters (those of its `model.keras`)."""
    return int(sum(np.prod(w.shape) for w in model.weights if not is_lora_weight(w)))


def summary(source, metrics, report, root):
    """The closing block: the validation figures against the majority label, the outputs,
    the next commands."""
    directory = shlex.quote(root)
    return (f"done in {format_duration(metrics['wall_time_seconds'])}: {metrics['steps']:,} "
            f"steps" + (" (stopped by the clock)" if metrics["stopped_by_clock"] else "")
            + f"; validation accuracy {report['accuracy']:.3f}, macro-F1 "
            f"{report['macro_f1']:.3f} on {len(source.val_rows)} rows (always the most frequent "
            f"label: {source.majority_share():.3f})\n"
            f"outputs in {root}: model.keras, tokenizer.json, config.json, {VALIDATION_FILE}, "
            "metrics.json, confusion_matrix.png, logs/, checkpoints/\nnext:\n"
            f"  keras-lm classify --model_dir={directory} --text='...'\n"
            f"  keras-lm eval --model_dir={directory}\n"
            f"  keras-lm export --model_dir={directory}")
