"""Time to a validation loss: nanoGPT's CPU recipe against candidate recipes, side by side.

In one process, on the same data, trains (a) a baseline that reproduces
nanoGPT's CPU recipe inside keras_lm (learned positions, GELU MLP x4, tied
head, AdamW lr 1e-3, beta2 0.99, warm-up 100 steps then cosine to 1e-4,
weight decay 0.1, gradient clip 1.0, no dropout, batch 12 x 64, 4 layers x
4 heads x 128, 2,000 steps) and (b) one or more candidate recipes, then
reports for each candidate:

- the wall time it needs to reach (a)'s final validation loss, and its
  ratio to (a)'s wall time (the issue's target: <= 1/3);
- its validation loss at (a)'s wall time.

Wall time is training only: the time inside `fit`'s steps, XLA compilation
included, periodic validations excluded. The validation loss is measured
the same way for every run, over the whole validation split (or its first
`--val_batches` batches, for smoke runs), every `--eval_interval` steps and
before the first; between two validations the curve is interpolated
linearly.

Corpora (`--corpus`): `char`, a single text at character level
(`--text_file`; default: about 1 MB made from the built-in corpus, the size
of nanoGPT's Shakespeare; the last 10% of it validates, as in nanoGPT), and
`byte`, the built-in corpus at byte level (split by file), where (a) keeps
its shape and reads bytes. `both` runs the two.

A candidate is `name:setting=value,setting=value`, the settings being
`TransformerLM` arguments (qk_norm, activation, zero_init_output,
logit_softcap, tie_embeddings, position_embedding, ...) or run settings
(optimizer, learning_rate, adam_learning_rate, beta2, schedule,
decay_fraction, warmup_steps, weight_decay, clipnorm, batch_size,
precision, jit_compile), applied on top of the baseline. `--candidates`
takes several, separated by `;`, or `ablation`: one row per option, then
all together (issue 33's smear, value_embeddings, unet_skips and bigram_hash have rows
but are not in `all`). `--base` gives (a) settings of its own (`best`: the
char recipe's model, rotary + QK-norm + ReLU²), which every candidate gets
under its own; a last table gives each run's validation loss at 25/50/75/100%
of the steps (equal tokens: a comparison the machine's load cannot move).

    python benchmarks/speedrun.py                       # both corpora, the default candidate
    python benchmarks/speedrun.py --corpus=char --candidates=ablation
    python benchmarks/speedrun.py --candidates="muon:optimizer=muon,learning_rate=0.003"
    # an option against the char recipe's model (--base applies to (a) and every candidate):
    python benchmarks/speedrun.py --base=best --candidates="smear:smear=true"
    # a smoke run (minutes; its figures mean nothing):
    python benchmarks/speedrun.py --steps=20 --eval_interval=10 --val_batches=4 \\
        --candidates="qk:qk_norm=true;all"

`--baseline=nanogpt` compares whole commands instead: real nanoGPT (a
checkout of karpathy/nanoGPT, run with another Python that has PyTorch)
against `keras-lm train --recipe=char`, process start to exit, on the same
char text (see speedrun_nanogpt.py):

    python benchmarks/speedrun.py --baseline=nanogpt --nanogpt_dir=/work/nanogpt \\
        --nanogpt_python=/work/torch-venv/bin/python --output_dir=/tmp/speedrun_nanogpt
    # a smoke run of the pipeline (its figures mean nothing):
    python benchmarks/speedrun.py --baseline=nanogpt --nanogpt_dir=/work/nanogpt \\
        --nanogpt_python=/work/torch-venv/bin/python --steps=20 --eval_interval=10 \\
        --keras_lm_args="--steps=20 --eval_interval=10"

Measure on an idle machine: a run under load is not a result.
"""

import argparse
import inspect
import json
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

# nanoGPT's config/train_shakespeare_char.py, scaled to its CPU suggestion
# (README: "--n_layer=4 --n_head=4 --n_embd=128 --block_size=64
# --batch_size=12 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0").
BASELINE = dict(
    model=dict(num_layers=4, num_heads=4, hidden_dim=128, sequence_length=64,
               position_embedding="learned", activation="gelu", tie_embeddings=True,
               dropout=0.0),
    run=dict(optimizer="adamw", learning_rate=1e-3, beta2=0.99, warmup_steps=100,
             schedule="cosine", decay_fraction=0.2, adam_learning_rate=None,
             weight_decay=0.1, clipnorm=1.0, batch_size=12, precision="float32",
             jit_compile=True, sequence_warmup_steps=0, batch_warmup_steps=0),
)
OPTIONS = {  # one row each in the ablation
    "rotary": "position_embedding=rotary",
    "qk_norm": "qk_norm=rms",
    "relu2": "activation=relu2",
    "zero_init": "zero_init_output=true",
    "softcap": "logit_softcap=15",
    "untied": "tie_embeddings=false",
    "wsd": "schedule=wsd",
    "muon": "optimizer=muon,learning_rate=0.003,adam_learning_rate=0.001",
    "bf16": "precision=mixed_bfloat16",
    "smear": "smear=true",
    "value_embeddings": "value_embeddings=1",
    "unet": "unet_skips=true",
    "bigram": "bigram_hash=4096",
}
# `--base=best`: the char recipe's model on nanoGPT's shape (what the options of
# issue 33 are measured against: each candidate is this plus its own settings).
BEST = "position_embedding=rotary,qk_norm=rms,activation=relu2"
# The default candidate: every option at once (untuned: a starting point).
# Issue 33's options stay out of it until one wins against the char recipe's model
# (`--base=best`): `all` is the candidate BENCHMARKS.md's figures were measured with.
NEW_OPTIONS = ("smear", "value_embeddings", "unet", "bigram")
ALL = "all:" + ",".join(v for k, v in OPTIONS.items() if k not in ("bf16", *NEW_OPTIONS))
CHAR_TEXT_BYTES = 1_100_000


def parse_candidates(text):
    """'name:a=1,b=x;name2:...' (or 'ablation', or 'all') -> [(name, {setting: value})]."""
    if text.strip() == "ablation":
        specs = [f"{name}:{value}" for name, value in OPTIONS.items()] + [ALL]
    else:
        specs = [s.strip() for s in text.split(";") if s.strip()]
    candidates = []
    for spec in specs:
        spec = ALL if spec == "all" else spec
        name, sep, body = spec.partition(":")
        if not sep:
            raise SystemExit(f"--candidates: expected name:setting=value,..., got {spec!r}")
        settings = {}
        for item in filter(None, (p.strip() for p in body.split(","))):
            key, eq, raw = item.partition("=")
            if not eq:
                raise SystemExit(f"--candidates: expected setting=value in {spec!r}, "
                                 f"got {item!r}")
            try:
                settings[key.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                settings[key.strip()] = raw
        candidates.append((name.strip(), settings))
    return candidates


def recipe(settings, steps):
    """The baseline with `settings` on top: (model args, run settings)."""
    from keras_lm.models import TransformerLM

    model_names = set(inspect.signature(TransformerLM.__init__).parameters) - {"self", "kwargs"}
    model, run = dict(BASELINE["model"]), dict(BASELINE["run"], steps=steps)
    for key, value in settings.items():
        if key in model_names:
            model[key] = value
        elif key in run:
            run[key] = value
        else:
            raise SystemExit(f"--candidates: unknown setting {key!r}; a TransformerLM "
                             f"argument or one of {', '.join(sorted(run))}")
    return model, run


def char_text(path, directory):
    """`path`, or about 1 MB of the built-in corpus's training files written to `directory`."""
    if path:
        return path
    from keras_lm import data

    files, _ = data.run_files("pystdlib", None, None, 0.05)
    text, size = [], 0
    for name in sorted(str(f) for f in files):
        with open(name, encoding="utf-8", errors="replace") as file:
            chunk = file.read()
        text.append(chunk)
        size += len(chunk.encode("utf-8"))
        if size >= CHAR_TEXT_BYTES:
            break
    path = os.path.join(directory, "stdlib_text.txt")
    with open(path, "w", encoding="utf-8") as file:
        file.write("".join(text))
    return path


def corpus_data(corpus, text_file, directory):
    """(train files, validation files, tokenizer, description) of `corpus`."""
    from keras_lm import data
    from keras_lm.tokenizers import ByteTokenizer, train_tokenizer

    if corpus == "char":
        path = char_text(text_file, directory)
        # One file: its last 10% (from a line boundary) validates, as nanoGPT's.
        train, val = data.run_files(None, path, None, 0.1)
        tokenizer = train_tokenizer("char", train)
        about = f"char: {os.path.basename(path)}, {tokenizer.vocabulary_size} ids"
    else:
        train, val = data.run_files("pystdlib", None, None, 0.05)
        tokenizer = ByteTokenizer()
        about = f"byte: built-in corpus, {len(train)} / {len(val)} files"
    return train, val, tokenizer, about


def train_one(name, settings, corpus, args):
    """Trains one recipe; returns its curve [(step, train seconds, val loss)] and facts."""
    from keras_lm import compat, data
    from keras_lm.models import TransformerLM

    train_files, val_files, tokenizer, _ = corpus
    model_args, run = recipe(settings, args.steps)
    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(run["precision"])
    try:
        model = TransformerLM(tokenizer.vocabulary_size, pad_id=tokenizer.pad_id, **model_args)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(run["optimizer"], learning_rate=run["learning_rate"],
                  total_steps=run["steps"], warmup_steps=run["warmup_steps"],
                  weight_decay=run["weight_decay"], clipnorm=run["clipnorm"],
                  beta2=run["beta2"], schedule=run["schedule"],
                  decay_fraction=run["decay_fraction"],
                  adam_learning_rate=run["adam_learning_rate"], jit_compile=run["jit_compile"])
    length = model_args["sequence_length"]
    train = data.text_dataset(train_files, tokenizer, length, run["batch_size"], shuffle=True,
                              repeat=True, seed=args.seed)
    train = data.short_windows_first(train, run["sequence_warmup_steps"])
    train = data.small_batches_first(train, run["batch_warmup_steps"])
    val = data.text_dataset(val_files, tokenizer, length, run["batch_size"])
    if args.val_batches:
        val = val.take(args.val_batches)
    val = val.cache()
    clock = TrainingClock(args.max_seconds)
    with compat.quiet_keras_data_warnings():
        initial = model.evaluate(val, verbose=0, return_dict=True)["loss"]
        clock.curve.append((0, 0.0, initial))
        interval = min(args.eval_interval, run["steps"])
        model.fit(train, epochs=math.ceil(run["steps"] / interval), steps_per_epoch=interval,
                  validation_data=val, callbacks=[clock], verbose=0)
    steps = int(model.optimizer.iterations.numpy())
    seconds = clock.curve[-1][1]
    tokens = data.tokens_after(steps, run["batch_size"] * length, run["batch_warmup_steps"])
    return dict(name=name, settings=settings, curve=clock.curve, steps=steps,
                seconds=seconds, final_loss=clock.curve[-1][2],
                tokens_per_second=tokens / seconds if seconds else None,
                parameters=model.count_params())


class TrainingClock(keras.callbacks.Callback):
    """Times `fit`'s training (steps, compilation) and not its validations; records
    `(step, seconds, val_loss)` after each validation; stops past `max_seconds`."""

    def __init__(self, max_seconds=None):
        super().__init__()
        self.max_seconds = max_seconds
        self.seconds = 0.0
        self.started = None
        self.curve = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.max_seconds and self._elapsed() >= self.max_seconds:
            self.model.stop_training = True  # fit still validates this epoch

    def on_test_begin(self, logs=None):
        if self.started is not None:  # a validation inside fit: stop the clock
            self.seconds = self._elapsed()
            self.started = None

    def on_epoch_end(self, epoch, logs=None):
        if self.started is not None:  # no validation ran
            self.seconds = self._elapsed()
            self.started = None
        step = int(self.model.optimizer.iterations.numpy())
        self.curve.append((step, self.seconds, float(logs["val_loss"])))

    def _elapsed(self):
        return self.seconds + time.perf_counter() - self.started


def time_to_loss(curve, target):
    """Seconds at which `curve` [(step, seconds, loss)] first reaches `target` (interpolated),
    or None if it never does."""
    for (_, t0, l0), (_, t1, l1) in zip(curve, curve[1:]):
        if l1 <= target:
            if l0 <= target:
                return t0
            return t0 + (t1 - t0) * (l0 - target) / (l0 - l1)
    return None


def loss_at_time(curve, seconds):
    """The loss of `curve` at `seconds` (interpolated); None past its end."""
    for (_, t0, l0), (_, t1, l1) in zip(curve, curve[1:]):
        if t0 <= seconds <= t1:
            return l0 if t1 == t0 else l0 + (l1 - l0) * (seconds - t0) / (t1 - t0)
    return None


def compare(baseline, candidate):
    """The row of `candidate` against `baseline`."""
    reach = time_to_loss(candidate["curve"], baseline["final_loss"])
    at = loss_at_time(candidate["curve"], baseline["seconds"])
    return dict(name=candidate["name"], final_loss=candidate["final_loss"],
                seconds=candidate["seconds"], steps=candidate["steps"],
                tokens_per_second=candidate["tokens_per_second"],
                seconds_to_baseline_loss=reach,
                ratio=None if reach is None else reach / baseline["seconds"],
                loss_at_baseline_seconds=at)


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(about, baseline, rows):
    """A Markdown table of one corpus."""
    lines = [
        f"### {about}",
        "",
        f"(a) baseline: final val loss {baseline['final_loss']:.4f} after {baseline['steps']} "
        f"steps, {baseline['seconds']:.1f} s of training "
        f"({_fmt(baseline['tokens_per_second'], ',.0f')} tokens/s, "
        f"{baseline['parameters']:,} parameters)",
        "",
        "| candidate | final val loss | steps | train s | tokens/s | s to (a)'s loss | "
        "ratio | loss at (a)'s time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['final_loss']:.4f} | {row['steps']} | "
            f"{row['seconds']:.1f} | {_fmt(row['tokens_per_second'], ',.0f')} | "
            f"{_fmt(row['seconds_to_baseline_loss'], '.1f')} | {_fmt(row['ratio'], '.2f')} | "
            f"{_fmt(row['loss_at_baseline_seconds'], '.4f')} |")
    return "\n".join(lines)


def loss_at_step(curve, step):
    """The loss of `curve` [(step, seconds, loss)] at `step` (interpolated); None past its end."""
    for (s0, _, l0), (s1, _, l1) in zip(curve, curve[1:]):
        if s0 <= step <= s1:
            return l0 if s1 == s0 else l0 + (l1 - l0) * (step - s0) / (s1 - s0)
    return None


def quality_table(baseline, runs, steps):
    """Validation loss at equal tokens (25/50/75/100% of `steps`): a clock-free comparison."""
    points = [round(steps * f) for f in (0.25, 0.5, 0.75, 1.0)]
    lines = ["| run | parameters | " + " | ".join(f"loss at step {p}" for p in points) + " |",
             "|---|---|" + "---|" * len(points)]
    for run in [baseline] + runs:
        losses = [loss_at_step(run["curve"], p) for p in points]
        cells = [_fmt(loss, ".4f") if run is baseline or loss is None else
                 f"{loss:.4f} ({loss - loss_at_step(baseline['curve'], p):+.4f})"
                 for loss, p in zip(losses, points)]
        lines.append(f"| {run['name']} | {run['parameters']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", choices=("recipe", "nanogpt"), default="recipe",
                        help="recipe: nanoGPT's recipe inside keras_lm, in this process "
                        "(option sweeps); nanogpt: real nanoGPT against keras-lm train "
                        "--recipe=char, whole commands.")
    parser.add_argument("--nanogpt_dir", default=None, help="A checkout of karpathy/nanoGPT.")
    parser.add_argument("--nanogpt_python", default=None,
                        help="The Python (with PyTorch) that runs nanoGPT.")
    parser.add_argument("--nanogpt_args", default="",
                        help="More nanoGPT flags, e.g. '--eval_iters=200'.")
    parser.add_argument("--keras_lm_args", default="",
                        help="More keras-lm train flags, e.g. '--eval_interval=100'.")
    parser.add_argument("--keras_lm_minutes", type=float, default=None,
                        help="keras-lm's --train_minutes (default: nanoGPT's whole time).")
    parser.add_argument("--output_dir", default=None,
                        help="--baseline=nanogpt: where the logs and the PNG go.")
    parser.add_argument("--corpus", choices=("char", "byte", "both"), default="both")
    parser.add_argument("--text_file", default=None,
                        help="The char corpus (default: ~1 MB of the built-in corpus).")
    parser.add_argument("--candidates", default="all",
                        help="'name:setting=value,...;...', 'all' or 'ablation'.")
    parser.add_argument("--base", default="",
                        help="Settings 'setting=value,...' (or 'best': the char recipe's model) "
                        "for the baseline (a); every candidate gets them too, under its own.")
    parser.add_argument("--steps", type=int, default=2000, help="Steps of every run.")
    parser.add_argument("--max_seconds", type=float, default=None,
                        help="Stop any run after this many seconds of training.")
    parser.add_argument("--eval_interval", type=int, default=None,
                        help="Steps between validations (default 100; nanoGPT's own 250 "
                        "with --baseline=nanogpt).")
    parser.add_argument("--val_batches", type=int, default=None,
                        help="Validate on the first N batches only (default: all).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None, help="Also write the curves here.")
    args = parser.parse_args()
    for name in ("steps", "eval_interval"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.baseline == "nanogpt":
        return whole_commands(args)
    args.eval_interval = args.eval_interval or 100
    base = parse_candidates("base:" + (BEST if args.base == "best" else args.base))[0][1]
    candidates = [(name, {**base, **settings})
                  for name, settings in parse_candidates(args.candidates)]
    for _, settings in candidates:
        recipe(settings, args.steps)  # unknown settings fail before any training

    from common import machine

    from keras_lm.io_utils import write_json

    print(f"machine: {machine()}")
    print(f"command: python benchmarks/{' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}")
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for corpus_name in ("char", "byte") if args.corpus == "both" else (args.corpus,):
            corpus = corpus_data(corpus_name, args.text_file, directory)
            baseline = train_one("baseline", base, corpus, args)
            print(f"[{corpus_name}] baseline: {baseline['final_loss']:.4f} in "
                  f"{baseline['seconds']:.1f} s", flush=True)
            runs = []
            for name, settings in candidates:
                runs.append(train_one(name, settings, corpus, args))
                print(f"[{corpus_name}] {name}: {runs[-1]['final_loss']:.4f} in "
                      f"{runs[-1]['seconds']:.1f} s", flush=True)
            rows = [compare(baseline, run) for run in runs]
            print()
            print(table(corpus[3], baseline, rows))
            print()
            print(quality_table(baseline, runs, args.steps))
            print()
            results[corpus_name] = dict(about=corpus[3], baseline=baseline, candidates=runs,
                                        rows=rows)
    if args.output_json:
        write_json(args.output_json, dict(machine=machine(), argv=sys.argv[1:],
                                          results=results))


def whole_commands(args):
    """--baseline=nanogpt: speedrun_nanogpt.main, with this script's char text."""
    import speedrun_nanogpt
    from common import machine

    from keras_lm.io_utils import write_json

    print(f"machine: {machine()}")
    results = speedrun_nanogpt.main(args, char_text)
    if args.output_json:
        write_json(args.output_json, dict(machine=machine(), argv=sys.argv[1:], **results))


if __name__ == "__main__":
    main()
