"""keras-lm explain: which tokens of a prompt made the model say what it said.

Scores each token of --prompt for a continuation of a language model (the
summed log-probability of --target's tokens; default: the model's own
greedy next token) or for a classifier's label (--label; default: its
prediction), prints the tokens with their scores (one JSON object with
--json), and writes into --output_dir (default: MODEL_DIR/explanations):

  explanation.html  the prompt with each token coloured by its score (red
                    raised the target's log-probability, blue lowered it)
  explanation.png   the scores as bars
  explanation.json  what --json prints
  logs/             TensorBoard: text explanation/tokens, image
                    explanation/attributions (tensorboard --logdir=OUTPUT_DIR/logs)

Methods (default: lime, the most faithful measured; integrated_gradients where
lime is not installed): integrated_gradients (--steps points of the path from the <pad>
embedding; the scores sum to the change of log-probability), gradient_x_input
(one gradient), occlusion (remove --span tokens at a time), shap (shap's
Permutation explainer over token masks) and lime (lime's text explainer over
the same masks); shap and lime delete the tokens they remove, evaluate
--samples masked inputs drawn with --seed, and need the `explain` extra
(pip install 'keras-lm[explain]'). With --compare (the default) the three
cheap methods run as well and the rank agreement (Spearman) of each pair is
reported; --compare=all adds shap and lime. See docs/interpret.md.

Examples:
  keras-lm explain --model_dir=saved_models/quickstart --prompt='import os.pa'
  keras-lm explain --model_dir=saved_models/quickstart --prompt='def __init__(self' --target='):'
  keras-lm explain --model_dir=saved_models/classify_stdlib --prompt=get_event_loop --json
  keras-lm explain --model_dir=saved_models/quickstart --prompt='import os.pa' --method=shap

A run made by `keras-lm finetune` has a prompt template: the prompt goes
through it (its tokens are scored too); --raw turns it off.
"""

import json
import os
import sys

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.interpret import DEFAULT_METHOD, DEFAULT_STEPS, METHODS, write_report
from keras_lm.interpret.explain import default_method
from keras_lm.interpret.sampling import DEFAULT_SEED
from keras_lm.run import Run

FLAGS = flags.FlagValues()

flags.DEFINE_string("model_dir", "saved_models/quickstart",
                    "A `keras-lm train` (or finetune) output directory.", flag_values=FLAGS)
flags.DEFINE_string("prompt", None, "The text whose tokens are scored.", flag_values=FLAGS)
flags.DEFINE_string("target", None, "Language models: the continuation to explain (default: "
                    "the model's greedy next token).", flag_values=FLAGS)
flags.DEFINE_string("label", None, "Classifiers: the label to explain (default: the "
                    "prediction).", flag_values=FLAGS)
flags.DEFINE_string("method", None, f"One of {', '.join(METHODS)} (default: {DEFAULT_METHOD}, the "
                    "most faithful measured; integrated_gradients where its package is not "
                    "installed).", flag_values=FLAGS)
flags.DEFINE_integer("steps", DEFAULT_STEPS, "Integration points of integrated gradients.",
                     flag_values=FLAGS)
flags.DEFINE_integer("span", 1, "Tokens occlusion removes at a time.", flag_values=FLAGS)
flags.DEFINE_integer("samples", None, "Masked inputs shap and lime evaluate (default: 10 "
                     "permutations' worth, 10 * (2 * tokens + 1)).", flag_values=FLAGS)
flags.DEFINE_integer("seed", DEFAULT_SEED, "The seed of shap's permutations and lime's samples.",
                     flag_values=FLAGS)


class _CompareParser(flags.ArgumentParser):
    """--compare, --nocompare (a boolean flag) and --compare=all."""

    def parse(self, argument):
        if isinstance(argument, bool) or argument == "all":
            return argument
        text = str(argument).lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(f"must be true, false or all, got {argument!r}")

    def flag_type(self):
        return "bool or all"


flags.DEFINE_flag(flags.Flag(
    _CompareParser(), flags.ArgumentSerializer(), "compare", True,
    "Also run the cheap methods (integrated_gradients, gradient_x_input, occlusion) and report "
    "the rank agreement; --compare=all adds shap and lime; --nocompare runs one method.",
    boolean=True), flag_values=FLAGS)
flags.DEFINE_boolean("json", False, "Print one JSON object instead of a table.",
                     flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "Where the page, PNG and TensorBoard logs go "
                    "(default: MODEL_DIR/explanations).", flag_values=FLAGS)
flags.DEFINE_boolean("raw", False, "Give the prompt to the model as it is: without the prompt "
                     "template of a fine-tuned run.", flag_values=FLAGS)


def main():
    if FLAGS.prompt is None:
        raise UsageError("--prompt: give the text to explain, got none")
    run = Run(FLAGS.model_dir)
    method = FLAGS.method or default_method()
    if method != (FLAGS.method or DEFAULT_METHOD):
        print(f"note: the default method {DEFAULT_METHOD} needs pip install 'keras-lm[explain]'; "
              f"explaining with {method}", file=sys.stderr)
    # Everything is checked before anything is written.
    result = run.explain(FLAGS.prompt, FLAGS.target, raw=FLAGS.raw, label=FLAGS.label,
                         method=method, steps=FLAGS.steps, span=FLAGS.span,
                         compare=FLAGS.compare, samples=FLAGS.samples, seed=FLAGS.seed)
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.model_dir, "explanations")
    paths = write_report(result, output_dir)
    if FLAGS.json:
        print(json.dumps({**result.to_json(), "files": paths}, ensure_ascii=False))
        return
    print_table(result, paths)


def print_table(result, paths, out=None):
    """The tokens and scores, readable in a terminal."""
    out = out or sys.stdout  # the current one (tests capture it), not the one at import
    what = "label" if result.kind == "label" else "target"
    print(f"{what}: {result.target!r}  log-probability {result.target_logp:.4f}  "
          f"method: {result.method}", file=out)
    for key, value in result.details.items():
        print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}",
              file=out)
    width = max(len(repr(t)) for t in result.tokens)
    for token, score in zip(result.tokens, result.scores):
        print(f"{token!r:<{width}}  {score:+.4f}", file=out)
    for pair, rho in result.agreement.items():
        print(f"Spearman {pair}: {'n/a' if rho is None else f'{rho:.3f}'}", file=out)
    print(f"wrote {paths['html']}, {paths['png']}, {paths['json']} and TensorBoard logs in "
          f"{paths['logs']}", file=out)


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
