"""One fine-tuning run from a `FinetuneConfig`: what `keras-lm finetune` does, top to bottom.

It starts from a trained run (the base: its `model.keras` and tokenizer,
which it never changes), trains on prompt -> response pairs (loss on the
responses) or on more text (continued training), fully or with LoRA, and
writes a normal run directory (`model.keras`, `tokenizer.json`,
`config.json` recording the base, `metrics.json`, `logs/`, ...), which
`eval`, `generate`, `export` and `probe` read. The run directory, the
callbacks, the console and the text source are `keras_lm.training`'s.
"""

import math
import os
import shlex
import time

import keras
import keras_hub

from keras_lm import compat
from keras_lm.adaptation.lora import (
    enable_lora,
    load_adapters,
    merged_weights_digest,
    save_adapters,
)
from keras_lm.adaptation.pairs_source import PairsSource
from keras_lm.generation import generate
from keras_lm.metrics import TokenAccuracy
from keras_lm.model_dir import load
from keras_lm.scoring import evaluate_files
from keras_lm.training.callbacks import run_callbacks
from keras_lm.training.console import Console, ProgressLog, format_duration
from keras_lm.training.distribute import make_strategy, weights_digest
from keras_lm.training.run_directory import RunDirectory
from keras_lm.training.sources import FINAL_EVAL_TOKENS, TextSource
from keras_lm.training.trainer import wall_clock

ADAPTERS_FILE = "adapters.npz"


def finetune(config, model=None):
    """Runs the fine-tuning `config` describes; returns the final metrics dict.

    `model`: start from this model rather than the one in `config.base_dir`
    (`keras-lm prune`'s smaller model, recovering); it carries the base's
    `tokenizer` and `run_config` as `keras_lm.load` attaches them.

    Every check (the base, the data rows, the template, LoRA) runs before
    anything is written: a mistake leaves no output directory behind.

    Example (not run here: it trains):
        from keras_lm.adaptation import FinetuneConfig, finetune
        finetune(FinetuneConfig(base_dir="saved_models/quickstart", data="pairs.jsonl",
                                output_dir="saved_models/pairs", lora_rank=8))
    """
    started = time.time()
    config.check_settings()
    console = Console(config.verbose)
    model = model if model is not None else load(config.base_dir, argument="base_dir")
    tokenizer, base_config = model.tokenizer, model.run_config
    config.resolve_from_base(model, tokenizer, base_config)
    template = config.resolved_template(base_config)
    lora = prepare_lora(config, model)
    source = make_finetune_source(config, tokenizer, template, model.sequence_length)
    run_dir = RunDirectory(config.output_dir, make_strategy("default"))
    run_dir.prepare()
    keras.utils.set_random_seed(config.seed)
    steps, interval = run_length(config)
    clock = wall_clock(config, started)
    compile_for(config, model, source, steps, clock)
    resolved = resolved_config(config, source, model, template, lora, steps, interval)
    tokenizer.prompt_template = template.template  # saved in tokenizer.json too
    run_dir.start(resolved, tokenizer)
    console.line(start_line(config, source, model, lora, steps, clock))
    if source.split_note:
        console.line(source.split_note)
    train_ds, val_ds = source.datasets(tokenizer)
    before = validation_loss(config, source, model, tokenizer, val_ds)
    console.line(f"validation loss before fine-tuning: {before:.3f}")
    progress = ProgressLog(console, steps, config.batch_size * config.sequence_length,
                           clock.seconds if clock else None, started)
    callbacks = run_callbacks(config, source, run_dir, tokenizer, val_ds,
                              resolved if config.hparams else None, clock, progress)
    if run_dir.resuming:
        console.line(f"resuming from the backup in {run_dir.backup_dir}")
    with compat.quiet_keras_data_warnings():
        history = model.fit(train_ds, epochs=steps // interval, steps_per_epoch=interval,
                            validation_data=val_ds, callbacks=callbacks.all, verbose=0,
                            shuffle=False)
    run_dir.save_model(model)  # Keras' saving merges LoRA's updates into the kernels
    if lora and config.save_adapters:
        save_adapters(model, run_dir.path(ADAPTERS_FILE), lora["base_weights_digest"])
    trained_steps = int(model.optimizer.iterations.numpy())
    console.line(source.final_scores_note)
    # The model in memory (its scoring already compiled) equals the saved,
    # merged one within 1e-5 (tests/adaptation/test_lora.py); the digest is the saved one's.
    metrics = {**source.final_scores(model, tokenizer, history),
               "val_loss_before": before,
               "steps": trained_steps,
               "tokens_seen": trained_steps * config.batch_size * config.sequence_length,
               "num_parameters": (lora or {}).get("parameters", model.count_params()),
               "trainable_parameters": (lora or {}).get("trainable_parameters",
                                                        model.count_params()),
               "stopped_by_clock": bool(clock and clock.stopped_at_step),
               "weights_digest": merged_weights_digest(model),
               "train_loss": callbacks.logs.last_full_interval_loss(interval)}
    if callbacks.hparams:
        callbacks.hparams.write_metrics(metrics, trained_steps)
    metrics["wall_time_seconds"] = time.time() - started
    run_dir.write_metrics(metrics)
    console.line(summary(config, source, model, tokenizer, template, metrics, run_dir.root))
    return metrics


def prepare_lora(config, model):
    """LoRA on `model` as configured (new adapters, or an adapters file); its info, or None."""
    if config.adapters:
        info = load_adapters(model, config.adapters)
    elif config.lora_rank is not None:
        info = enable_lora(model, config.lora_rank, config.lora_alpha, config.lora_targets)
    else:
        return None
    config.lora_rank, config.lora_alpha = info["rank"], info["alpha"]
    config.lora_targets = ",".join(info["targets"])
    return info


def make_finetune_source(config, tokenizer, template, sequence_length):
    """`PairsSource` for pairs (reads and checks every row), `TextSource` for text."""
    if config.kind == "text":
        return TextSource(config, tokenizer=tokenizer)
    if config.pairs_corpus and config.pairs_corpus_max_bytes is None:
        # A built-in pair fits the base's context whole (its template's bytes aside).
        config.pairs_corpus_max_bytes = sequence_length - 16
    config.position_loss = False  # a position in a padded pair means little
    source = PairsSource(config, tokenizer, template, sequence_length)
    if config.sample_prompts in ([""], [], None):
        # The samples answer the first validation prompt, as the model will be prompted.
        config.sample_prompts = [template.apply(source.val_pairs[0].prompt)]
    if config.sample_tokens is None:
        # As long as the longest response, in the room the prompt leaves.
        prompt = int((source.val_examples.weights[0] == 0).sum()) + 1  # with <bos>
        longest = max(int(w.sum()) for w in source.train_examples.weights)
        config.sample_tokens = max(1, min(longest, sequence_length - prompt))
    return source


def run_length(config):
    """`(steps, eval_interval)`: steps rounded up to whole evaluation intervals."""
    interval = min(config.eval_interval, config.steps)
    return math.ceil(config.steps / interval) * interval, interval


def compile_for(config, model, source, steps, clock):
    """Compiles `model`; for pairs the loss and metrics weigh each response token once."""
    extra = {}
    if isinstance(source, PairsSource):
        # Per batch: the sum over response tokens / their number (the weights).
        extra = dict(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"),
            metrics=[keras_hub.metrics.Perplexity(from_logits=True), TokenAccuracy()])
    jit = config.jit_compile if config.jit_compile is not None else "auto"
    model.compile(config.optimizer, learning_rate=config.learning_rate,
                  total_steps=None if clock else steps, warmup_steps=config.warmup_steps,
                  weight_decay=config.weight_decay, clipnorm=config.clipnorm, jit_compile=jit,
                  **extra)


def validation_loss(config, source, model, tokenizer, val_ds):
    """The loss the run reports at its end, measured the same way (before training)."""
    if isinstance(source, PairsSource):
        return source.final_scores(model, tokenizer)["val_loss"]
    return evaluate_files(model, tokenizer, source.val_files, batch_size=config.batch_size,
                          tokens_per_byte=source.val_tokens_per_byte,
                          max_tokens=FINAL_EVAL_TOKENS)["loss"]


def resolved_config(config, source, model, template, lora, steps, interval):
    """What config.json records: the settings, the base, the data's facts, the template."""
    return {
        **config.to_dict(), **source.facts(),
        "run_kind": "finetune", "finetune_kind": config.kind,
        "base": {"model_dir": os.path.abspath(config.base_dir),
                 "weights_digest": (lora or {}).get("base_weights_digest")
                 or weights_digest(model)},
        "lora": lora, **template.to_config(),
        "steps": steps, "eval_interval": interval,
        "sample_tokens": config.sample_length(),
        "num_parameters": model.count_params(),
        "model_config": model.get_config(),
        "distribute": {"strategy": "default", "jit_compile": bool(model.jit_compile)},
    }


def start_line(config, source, model, lora, steps, clock):
    length = (f"{config.train_minutes} minutes (at most {steps} steps)" if clock
              else f"{steps} steps")
    if lora:
        what = (f"LoRA rank {lora['rank']} (alpha {lora['alpha']:g}) on "
                f"{','.join(lora['targets'])}: {lora['trainable_parameters']:,} trainable of "
                f"{lora['parameters']:,} parameters "
                f"({lora['trainable_parameters'] / lora['parameters']:.2%})")
    else:
        what = f"every weight: {model.count_params():,} trainable parameters"
    return (f"fine-tuning {config.model} from {config.base_dir}, {what}; "
            f"{source.description()}; {length} of {config.batch_size} sequences")


def summary(config, source, model, tokenizer, template, metrics, root):
    """The closing block: before and after, a sample answer, the next commands."""
    kind = "response " if config.kind == "pairs" else ""
    lines = [f"done in {format_duration(metrics['wall_time_seconds'])}: "
             f"{metrics['steps']:,} steps"
             + (" (stopped by the clock)" if metrics["stopped_by_clock"] else ""),
             f"validation {kind}loss: {metrics['val_loss_before']:.3f} before, "
             f"{metrics['val_loss']:.3f} after"
             + (f" (token accuracy {metrics['val_token_accuracy']:.1%})"
                if "val_token_accuracy" in metrics else
                f" ({metrics['val_bits_per_byte']:.3f} bits per byte)"),
             f"outputs in {root}: model.keras, tokenizer.json, config.json, metrics.json, logs/"
             + (f", {ADAPTERS_FILE}" if config.save_adapters else "")]
    if config.kind == "pairs" and config.samples:
        pair = source.val_pairs[0]
        prompt_tokens = 1 + len(tokenizer.encode(template.apply(pair.prompt)))
        room = max(1, min(config.sample_length(), model.sequence_length - prompt_tokens))
        answer = generate(model, tokenizer, template.apply(pair.prompt), room, truncate="left")
        lines.append(f"a validation prompt ({pair.source}), answered greedily:\n"
                     f"{template.apply(pair.prompt)}{answer}")
    directory = shlex.quote(root)
    lines += ["next:", f"  keras-lm generate --model_dir={directory} --prompt='...'",
              f"  keras-lm eval --model_dir={directory}",
              f"  keras-lm export --model_dir={directory}"]
    return "\n".join(lines)

