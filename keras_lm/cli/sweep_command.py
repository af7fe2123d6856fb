"""keras-lm sweep: train a grid of models on a synthetic task; tables and plots against size.

Cells are model families x widths (--sizes) x depths (--num_layers) x
training lengths (--steps). Each trains into OUTPUT_DIR/runs/<cell> (with
its HParams for TensorBoard: `tensorboard --logdir OUTPUT_DIR/runs`) and is
scored: exact match, token accuracy, token edit distance, answer
log-likelihood, ICL score. Writes results.csv, results.json and PNGs of
exact match beside each continuous metric against parameter count. A re-run
skips finished cells. With --max_minutes, a grid estimated to take longer
warns before it starts.

Example:
  keras-lm sweep --task=mqar --mqar_num_pairs=8 --sequence_length=64 --vocab_size=128 \\
      --model=transformer,lstm --sizes=32,64 --steps=1000 --output_dir=sweeps/mqar
"""

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.cli.config_flags import define_config_flags, flag_name, flag_of, given_settings
from keras_lm.cli.task_flags import define_task_flags, task_args_from
from keras_lm.errors import UsageError
from keras_lm.probes.sweep import Sweep, run_sweep

FLAGS = flags.FlagValues()
define_task_flags(FLAGS, __name__)
# The settings a sweep shares with `keras-lm train`, with the sweep's defaults.
SHARED = ("sequence_length", "vocabulary_size", "batch_size", "learning_rate", "weight_decay",
          "seed", "output_dir", "model_args")
SWEEP_DEFAULTS = {"sequence_length": 64, "batch_size": 32, "learning_rate": 3e-3}
define_config_flags(FLAGS, __name__, SHARED, defaults=SWEEP_DEFAULTS, helps={
    "vocabulary_size": "Task ids V (default: the task's).",
    "seed": "Random seed of every run.",
    "output_dir": "Where the runs and results go (required).",
    "model_args": "More TransformerLM arguments for the Transformer cells, e.g. "
                  "intermediate_dim=0 (attention-only blocks).",
})
flags.DEFINE_string("model", "transformer,lstm", "Comma-separated model families.",
                    flag_values=FLAGS)
flags.DEFINE_string("sizes", "32,64", "Comma-separated widths (hidden_dim).", flag_values=FLAGS)
flags.DEFINE_string("lstm_sizes", None,
                    "Comma-separated widths of the LSTM cells (default: --sizes): an LSTM "
                    "matches a Transformer's parameters at a larger width.", flag_values=FLAGS)
flags.DEFINE_integer("score_every", None,
                     "Score the answers on a fixed held-out set every this many steps of each "
                     "run: TensorBoard scalars and <run>/probes/answer_curves.{json,csv,png}.",
                     flag_values=FLAGS)
flags.DEFINE_string("num_layers", None,
                    "Comma-separated depths (default: 2 for the Transformer, 1 for the LSTM).",
                    flag_values=FLAGS)
flags.DEFINE_string("steps", "500", "Comma-separated training lengths in steps.",
                    flag_values=FLAGS)
flags.DEFINE_float("max_minutes", None, "Warn before starting if the grid's estimated time "
                   "exceeds this.", flag_values=FLAGS)


def parse_list(flag, text, kind=int):
    """'32,64' -> [32, 64]; a bad item is a UsageError naming the flag."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        values = [kind(item) for item in items]
    except ValueError:
        raise UsageError(f"--{flag}: expected a comma-separated list, got {text!r}") from None
    if not values:
        raise UsageError(f"--{flag}: empty list")
    return values


def main():
    if not FLAGS.task:
        raise UsageError("--task is required: induction, mqar, fewshot or addition")
    if not FLAGS.output_dir:
        raise UsageError("--output_dir is required (where the runs and results go)")
    sweep = Sweep(
        task=FLAGS.task, task_args=task_args_from(FLAGS),
        families=parse_list("model", FLAGS.model, str),
        sizes=parse_list("sizes", FLAGS.sizes),
        num_layers=parse_list("num_layers", FLAGS.num_layers) if FLAGS.num_layers else None,
        steps=parse_list("steps", FLAGS.steps), max_minutes=FLAGS.max_minutes,
        family_sizes={"lstm": parse_list("lstm_sizes", FLAGS.lstm_sizes)}
        if FLAGS.lstm_sizes else None,
        score_every=FLAGS.score_every,
        **given_settings(FLAGS, ("model_args",)),  # parsed to a dict when given
        **{name: FLAGS[flag_name(name)].value for name in SHARED if name != "model_args"},
    )
    rows = run_sweep(sweep)
    for row in rows:
        print(f"{row['group']:<22} width {row['width']:>4}  {row['num_parameters']:>9,} params  "
              f"exact {row['exact_match']:.3f}  token acc {row['token_accuracy']:.3f}  "
              f"ICL {row['icl_score']:+.3f}")
    print(f"results in {FLAGS.output_dir}/results.csv")


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__,
                   lambda argument: {"families": "--model", "family_sizes": "--lstm_sizes"}.get(
                       argument) or flag_of(argument))
