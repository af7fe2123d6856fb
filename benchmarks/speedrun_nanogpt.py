"""`speedrun.py --baseline=nanogpt`: real nanoGPT against `keras-lm train --recipe=char`,
both as whole commands, on the same character-level text.

What a user compares is two shell commands, prompt to prompt. This module

1. writes one char-level text (`--text_file`, or ~1.1 MB of the built-in
   corpus) as nanoGPT's data format (its `data/shakespeare_char/prepare.py`
   shape: `train.bin` / `val.bin` as uint16 ids, `meta.pkl` with
   `vocab_size`, `itos`, `stoi`; the first 90% of the characters train, the
   rest validates) and as two plain files, `train.txt` / `val.txt`, holding
   exactly the same characters, for keras_lm;
2. runs nanoGPT's `train.py` from the checkout given (`--nanogpt_dir`;
   nothing of it is copied here) with the Python given (`--nanogpt_python`,
   an environment with PyTorch), with its README's CPU configuration, in a
   scratch directory (so the checkout stays untouched: only its
   `configurator.py` is linked there, as `train.py` reads it from the
   working directory);
3. runs `keras-lm train --recipe=char --train_files=train.txt
   --val_files=val.txt` (by default with the clock set to nanoGPT's whole
   time, the same budget);
4. timestamps every line each process prints (`subprocess`, wall clock
   from just before the process starts), parses the validation losses
   (nanoGPT: `step N: train loss X, val loss Y`; keras_lm: its per-evaluation
   line `step N  ...  val Y` and the final `loss Y` of the whole
   validation text), and reports the whole-command time each side needs
   to reach nanoGPT's final validation loss, the ratio, and a loss-vs-time PNG.

Loss scales: both sides report the mean cross-entropy in nats per
character of the same validation characters (each character is one id on
both sides; keras_lm's `<bos>`/`<eos>` around the file are 2 ids in ~110k).
Characters of the validation part that the training part lacks are dropped
from the text first, so neither side has an unknown id. The estimates
differ in which windows they average: nanoGPT's `estimate_loss` over
`--eval_iters` (README: 20) random windows of 64, keras_lm's periodic
validation over its first `--val_steps` batches (the char recipe: 16 x 12
windows), and its final line over the whole validation text.
"""

import os
import pickle
import re
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

# nanoGPT's README, "I only have a macbook": its CPU configuration.
NANOGPT_CPU_ARGS = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1",
                    "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                    "--n_embd=128", "--dropout=0.0"]
DATASET = "keras_lm_char"
NANOGPT_VAL = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
KERAS_LM_VAL = re.compile(r"^step ([\d,]+)\s.*?\bval ([\d.]+)")
KERAS_LM_FINAL = re.compile(r"^validation: .*?; loss ([\d.]+),")


def split_like_nanogpt(text):
    """(train, val): nanoGPT's split (first 90% of the characters), with the validation
    characters the training part lacks dropped (no side then has an unknown id)."""
    cut = int(len(text) * 0.9)
    train, val = text[:cut], text[cut:]
    known = set(train)
    return train, "".join(c for c in val if c in known)


def write_data(text, directory):
    """Writes nanoGPT's data/<DATASET>/ and keras_lm's train.txt / val.txt; returns
    (the nanoGPT data directory, train.txt, val.txt, facts)."""
    train, val = split_like_nanogpt(text)
    chars = sorted(set(train))
    if len(chars) > 1020:  # keras_lm's char vocabulary: 1024 ids, 4 of them special
        raise SystemExit(f"--text_file: {len(chars)} distinct characters; at most 1020 "
                         "fit keras_lm's char vocabulary")
    stoi = {c: i for i, c in enumerate(chars)}
    data_dir = os.path.join(directory, "data", DATASET)
    os.makedirs(data_dir, exist_ok=True)
    for name, part in (("train", train), ("val", val)):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(
            os.path.join(data_dir, f"{name}.bin"))
        # newline="" keeps the characters as they are (no \n -> os.linesep).
        with open(os.path.join(directory, f"{name}.txt"), "w", encoding="utf-8",
                  newline="") as file:
            file.write(part)
    with open(os.path.join(data_dir, "meta.pkl"), "wb") as file:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi},
                    file)
    facts = dict(train_characters=len(train), val_characters=len(val),
                 vocabulary=len(chars))
    return (data_dir, os.path.join(directory, "train.txt"),
            os.path.join(directory, "val.txt"), facts)


def timed_command(command, cwd, log_path):
    """Runs `command`; returns (seconds to exit, [(seconds, line)], exit code).

    The clock starts just before the process does; each line is stamped
    when it arrives (both sides run unbuffered). The lines also go to
    `log_path`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    lines = []
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            log.write(f"{lines[-1][0]:9.3f}  {line}")
        code = process.wait()
    return time.perf_counter() - start, lines, code


def nanogpt_curve(lines):
    """[(seconds, step, val loss)] of nanoGPT's evaluation lines."""
    curve = []
    for seconds, line in lines:
        match = NANOGPT_VAL.match(line)
        if match:
            curve.append((seconds, int(match.group(1)), float(match.group(3))))
    return curve


def keras_lm_curve(lines):
    """[(seconds, step, val loss)] of keras-lm's evaluation lines, then its final
    evaluation of the whole validation text (step None)."""
    curve = []
    for seconds, line in lines:
        match = KERAS_LM_VAL.match(line)
        if match:
            curve.append((seconds, int(match.group(1).replace(",", "")),
                          float(match.group(2))))
        match = KERAS_LM_FINAL.match(line)
        if match:
            curve.append((seconds, None, float(match.group(1))))
    return curve


def seconds_to(curve, target):
    """The first time `curve` [(seconds, step, loss)] reaches `target`, interpolated
    linearly between two evaluations; None if it never does."""
    if curve and curve[0][2] <= target:
        return curve[0][0]
    for (t0, _, l0), (t1, _, l1) in zip(curve, curve[1:]):
        if l1 <= target:
            return t0 + (t1 - t0) * (l0 - target) / (l0 - l1)
    return None


def nanogpt_command(args, directory):
    """nanoGPT's train.py with the README's CPU configuration on our data."""
    steps = args.steps
    command = [args.nanogpt_python, os.path.join(args.nanogpt_dir, "train.py"),
               os.path.join(args.nanogpt_dir, "config", "train_shakespeare_char.py"),
               *NANOGPT_CPU_ARGS, f"--max_iters={steps}", f"--lr_decay_iters={steps}",
               f"--dataset={DATASET}", f"--out_dir={os.path.join(directory, 'out-nanogpt')}"]
    if args.eval_interval:
        command.append(f"--eval_interval={args.eval_interval}")
    return command + shlex.split(args.nanogpt_args or "")


def keras_lm_command(args, train_txt, val_txt, directory, nanogpt_seconds):
    """`keras-lm train --recipe=char` on the same text, by default on nanoGPT's time."""
    script = os.path.join(os.path.dirname(sys.executable), "keras-lm")
    base = [script] if os.path.exists(script) else [sys.executable, "-m", "keras_lm.cli.main"]
    extra = shlex.split(args.keras_lm_args or "")
    command = base + ["train", "--recipe=char", f"--train_files={train_txt}",
                      f"--val_files={val_txt}", f"--output_dir={os.path.join(directory, 'run')}",
                      "--verbose=2"]
    if not any(a.startswith(("--steps", "--train_minutes", "--epochs")) for a in extra):
        minutes = args.keras_lm_minutes or nanogpt_seconds / 60
        command.append(f"--train_minutes={minutes:.3f}")
    return command + extra


def plot(path, sides, target):
    """Validation loss against whole-command seconds, both sides, and the target."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for name, side in sides.items():
        curve = side["curve"]
        axes.plot([c[0] for c in curve], [c[2] for c in curve], marker="o", label=name)
        axes.axvline(side["seconds"], color=axes.lines[-1].get_color(), linestyle=":",
                     linewidth=1)
    axes.axhline(target, color="gray", linestyle="--", linewidth=1,
                 label=f"nanoGPT's final val loss {target:.4f}")
    axes.set_xlabel("seconds since the command started (dotted: exit)")
    axes.set_ylabel("validation loss (nats per character)")
    axes.set_title("Whole command: nanoGPT (PyTorch) vs keras-lm train --recipe=char")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def run_side(name, command, cwd, output_dir):
    """One side, timed; exits with its log's tail if it failed or printed no loss."""
    print(f"[{name}] {shlex.join(command)}", flush=True)
    log = os.path.join(output_dir, f"{name}.log")
    seconds, lines, code = timed_command(command, cwd, log)
    curve = (nanogpt_curve if name == "nanogpt" else keras_lm_curve)(lines)
    if code != 0 or not curve:
        tail = "\n".join(line for _, line in lines[-15:])
        raise SystemExit(f"[{name}] exit code {code}, {len(curve)} validation lines; "
                         f"log: {log}\n{tail}")
    print(f"[{name}] {seconds:.1f} s, final val loss {curve[-1][2]:.4f}", flush=True)
    return dict(command=command, seconds=seconds, curve=curve, exit_code=code)


def report(sides, facts):
    """The Markdown table: each side's whole command, time to nanoGPT's final loss, ratio."""
    nanogpt, ours = sides["nanogpt"], sides["keras-lm"]
    target = nanogpt["curve"][-1][2]
    reach = seconds_to(ours["curve"], target)
    rows = [
        f"text: {facts['train_characters']:,} training / {facts['val_characters']:,} "
        f"validation characters, {facts['vocabulary']} distinct",
        "",
        "| side | whole command s | final val loss | s to nanoGPT's final val loss | "
        "ratio to nanoGPT's whole command |",
        "|---|---|---|---|---|",
        f"| nanoGPT | {nanogpt['seconds']:.1f} | {target:.4f} | "
        f"{nanogpt['curve'][-1][0]:.1f} (its last evaluation) | 1.00 |",
        f"| keras-lm | {ours['seconds']:.1f} | {ours['curve'][-1][2]:.4f} | "
        + ("not reached | - |" if reach is None else
           f"{reach:.1f} | {reach / nanogpt['seconds']:.2f} |"),
        "",
    ]
    for name, side in sides.items():
        rows.append(f"{name}: `{shlex.join(side['command'])}`")
    return "\n".join(rows), dict(target=target, keras_lm_seconds_to_target=reach,
                                 ratio=None if reach is None else reach / nanogpt["seconds"])


def main(args, char_text):
    """The nanoGPT mode of speedrun.py: both whole commands, the table, the PNG, the JSON.

    `char_text(path, directory)` gives the text file (speedrun.py's)."""
    for name in ("nanogpt_dir", "nanogpt_python"):
        if not getattr(args, name):
            raise SystemExit(f"--{name}: required with --baseline=nanogpt")
    if not os.path.isfile(os.path.join(args.nanogpt_dir, "train.py")):
        raise SystemExit(f"--nanogpt_dir: no train.py in {args.nanogpt_dir!r}")
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="speedrun_nanogpt_")
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        with open(char_text(args.text_file, directory), encoding="utf-8", newline="") as f:
            text = f.read()
        _, train_txt, val_txt, facts = write_data(text, directory)
        # train.py reads configurator.py from its working directory.
        os.symlink(os.path.join(os.path.abspath(args.nanogpt_dir), "configurator.py"),
                   os.path.join(directory, "configurator.py"))
        sides = {"nanogpt": run_side("nanogpt", nanogpt_command(args, directory), directory,
                                     output_dir)}
        command = keras_lm_command(args, train_txt, val_txt, directory,
                                   sides["nanogpt"]["seconds"])
        sides["keras-lm"] = run_side("keras-lm", command, directory, output_dir)
    table, figures = report(sides, facts)
    print()
    print(table)
    png = os.path.join(output_dir, "loss_vs_time.png")
    plot(png, sides, figures["target"])
    print(f"\nplot: {png}; logs: {output_dir}/nanogpt.log, {output_dir}/keras-lm.log")
    return dict(facts=facts, sides=sides, **figures)
