"""Fixed costs of `keras-lm train`, whole commands: imports, `--help`, and the phases of a
one-step run of the char recipe.

Each figure is a separate process, timed from just before it starts to its
exit (the median of `--repeats`), as a user at the prompt sees it:

- `python -c "import tensorflow"`: the floor (TensorFlow's own start-up);
  `import keras`; `import keras_lm`;
- `keras-lm --help` and `keras-lm train --help`;
- `keras-lm train --recipe=char --steps=1 --verbose=2`, cut into phases by
  the time each line arrives:
  start-up (to the run's first line: imports, the char tokenizer, the
  model), first step (to the `step 1` line: data pipeline, tracing and
  compiling the train step, and its validation), extras (to `evaluating on
  the validation text`: samples, attention maps, loss by position, the
  projector, the checkpoint and backup, model.keras), final evaluation (to
  the summary: the whole validation text, xz's figure, the summary's
  sample) and exit (the writes after it and the interpreter's teardown).

`--repo` runs another checkout's package (its path goes first on
PYTHONPATH; the child prints which `keras_lm` it imported), so the same
script measures before and after a change:

`--clocked=1.5` also runs `keras-lm train --recipe=char --train_minutes=1.5`
and prints its steps, its whole time and the seconds between its
evaluation lines (training + validation + the extras drawn then): with the
extras on a 5% budget, more steps fit in the same clock.

    git worktree add /tmp/speed_before <sha>
    python benchmarks/fixed_costs.py --repo=/tmp/speed_before --repeats=3
    python benchmarks/fixed_costs.py --repeats=3
    python benchmarks/fixed_costs.py --repo=/tmp/speed_before --repeats=1 --clocked=1.5
    # a smoke run (its figures mean nothing under load):
    python benchmarks/fixed_costs.py --repeats=1

Measure on an idle machine: a run under load is not a result.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

# The lines that end each phase of the one-step run (a line's start).
PHASES = (("start-up", ""), ("first step + validation", "step 1 "),
          ("extras (samples, views, checkpoints)", "evaluating on the validation text"),
          ("final evaluation + summary", "done in "))


def timed(command, env, cwd):
    """(seconds to exit, [(seconds, line)]): the process's lines, each stamped on arrival."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace")
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in process.stdout]
    code = process.wait()
    seconds = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(line for _, line in lines[-15:])
        raise SystemExit(f"{' '.join(command)}: exit code {code}\n{tail}")
    return seconds, lines


def phases(lines, total):
    """[(phase, seconds)] of a one-step run's lines; the rest of `total` is the exit."""
    marks, ends = [], 0.0
    for name, prefix in PHASES:
        at = next((t for t, line in lines if line and line.startswith(prefix)
                   and not line.startswith("WARNING") and t >= ends), None)
        if at is None:
            raise SystemExit(f"no line starting with {prefix!r} in the run's output")
        marks.append((name, at - ends))
        ends = at
    return marks + [("exit (writes after, teardown)", total - ends)]


def environment(repo):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    if repo:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=None,
                        help="Run this checkout's keras_lm (default: the installed one).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train_args", default="",
                        help="More flags for the one-step run, e.g. '--samples=false'.")
    parser.add_argument("--clocked", type=float, default=None,
                        help="Also a char run of this many minutes by the clock.")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    env, python = environment(args.repo), sys.executable
    cli = [python, "-m", "keras_lm.cli.main"]
    with tempfile.TemporaryDirectory() as cwd:
        _, lines = timed([python, "-c", "import keras_lm; print(keras_lm.__file__)"], env, cwd)
        print(f"keras_lm from: {lines[-1][1]}")
        commands = {
            "python -c 'import tensorflow'": [python, "-c", "import tensorflow"],
            "python -c 'import keras'": [python, "-c", "import keras"],
            "python -c 'import keras_lm'": [python, "-c", "import keras_lm"],
            "keras-lm --help": cli + ["--help"],
            "keras-lm train --help": cli + ["train", "--help"],
        }
        print("| command | seconds (median of %d) |\n|---|---|" % args.repeats)
        for name, command in commands.items():
            times = [timed(command, env, cwd)[0] for _ in range(args.repeats)]
            print(f"| `{name}` | {statistics.median(times):.2f} |", flush=True)
        runs = []
        for repeat in range(args.repeats):
            run = cli + ["train", "--recipe=char", "--steps=1", "--verbose=2",
                         f"--output_dir={os.path.join(cwd, f'run{repeat}')}"]
            run += args.train_args.split()
            total, lines = timed(run, env, cwd)
            runs.append((total, phases(lines, total)))
        print(f"\n`keras-lm train --recipe=char --steps=1 --verbose=2 {args.train_args}`")
        print(f"\n| phase | seconds (median of {args.repeats}) |\n|---|---|")
        for index, (name, _) in enumerate(runs[0][1]):
            value = statistics.median(run[1][index][1] for run in runs)
            print(f"| {name} | {value:.2f} |")
        print(f"| **whole command** | **{statistics.median(r[0] for r in runs):.2f}** |")
        if args.clocked:
            clocked(cli, args.clocked, env, cwd)


def clocked(cli, minutes, env, cwd):
    """A char run by the clock: its steps, whole time, and the gaps between evaluations."""
    command = cli + ["train", "--recipe=char", f"--train_minutes={minutes}", "--verbose=2",
                     f"--output_dir={os.path.join(cwd, 'clocked')}"]
    total, lines = timed(command, env, cwd)
    evaluations = [t for t, line in lines if line.startswith("step ")]
    done = next(line for _, line in lines if line.startswith("done in "))
    gaps = ", ".join(f"{b - a:.1f}" for a, b in zip(evaluations, evaluations[1:]))
    print(f"\n`{' '.join(command[3:-1])}`: whole command {total:.1f} s; {done}; "
          f"evaluation lines at {', '.join(f'{t:.1f}' for t in evaluations)} s "
          f"(gaps {gaps or '-'} s)")


if __name__ == "__main__":
    main()
