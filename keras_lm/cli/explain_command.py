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

Methods: integrated_gradients (--steps points of the path from the <pad>
embedding; the scores sum to the change of log-probability), gradient_x_input
(one gradient), occlusion (remove --span tokens at a time). With --compare
(the default) the other two run as well and the rank agreement (Spearman) of
each pair is reported. See docs/interpret.md.

Examples:
  keras-lm explain --model_dir=saved_models/quickstart --prompt='import os.pa'
  keras-lm explain --model_dir=saved_models/quickstart --prompt='def __init__(self' --target='):'
  keras-lm explain --model_dir=saved_models/classify_stdlib --prompt=get_event_loop --json

A run made by `keras-lm finetune` has a prompt template: the prompt goes
through it (its tokens are scored too); --raw turns it off.
"""

import json
import os
import sys

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.interpret import DEFAULT_STEPS, METHODS, explain, write_report
from keras_lm.model_dir import load_model_dir
from keras_lm.models import TextClassifier
from keras_lm.prompt_template import PromptTemplate

FLAGS = flags.FlagValues()

flags.DEFINE_string("model_dir", "saved_models/quickstart",
                    "A `keras-lm train` (or finetune) output directory.", flag_values=FLAGS)
flags.DEFINE_string("prompt", None, "The text whose tokens are scored.", flag_values=FLAGS)
flags.DEFINE_string("target", None, "Language models: the continuation to explain (default: "
                    "the model's greedy next token).", flag_values=FLAGS)
flags.DEFINE_string("label", None, "Classifiers: the label to explain (default: the "
                    "prediction).", flag_values=FLAGS)
flags.DEFINE_string("method", "integrated_gradients", f"One of {', '.join(METHODS)}.",
                    flag_values=FLAGS)
flags.DEFINE_integer("steps", DEFAULT_STEPS, "Integration points of integrated gradients.",
                     flag_values=FLAGS)
flags.DEFINE_integer("span", 1, "Tokens occlusion removes at a time.", flag_values=FLAGS)
flags.DEFINE_boolean("compare", True, "Also run the other methods; report the rank agreement.",
                     flag_values=FLAGS)
flags.DEFINE_boolean("json", False, "Print one JSON object instead of a table.",
                     flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "Where the page, PNG and TensorBoard logs go "
                    "(default: MODEL_DIR/explanations).", flag_values=FLAGS)
flags.DEFINE_boolean("raw", False, "Give the prompt to the model as it is: without the prompt "
                     "template of a fine-tuned run.", flag_values=FLAGS)


def main():
    if FLAGS.prompt is None:
        raise UsageError("--prompt: give the text to explain, got none")
    model, tokenizer, config = load_model_dir(FLAGS.model_dir)
    prompt = FLAGS.prompt
    if not isinstance(model, TextClassifier) and not FLAGS.raw and prompt:
        prompt = PromptTemplate.from_run_config(config).apply(prompt)
    # Everything is checked before anything is written.
    result = explain(model, prompt, FLAGS.target, label=FLAGS.label, method=FLAGS.method,
                     steps=FLAGS.steps, span=FLAGS.span, compare=FLAGS.compare,
                     tokenizer=tokenizer)
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
