"""keras-lm generate: continue a prompt with a trained model, streaming the text.

Examples:
  keras-lm generate --model_dir=saved_models/quickstart --prompt='def '
  keras-lm generate --prompt='import ' --sampler=top_p --top_p=0.9 --seed=1
  keras-lm generate --prompt='class ' --num_samples=3 --temperature=0.8
  keras-lm generate --prompt='for ' --sampler=beam --beam_width=4 --stop='\\n'
  keras-lm generate --model=saved_models/quickstart/tflite/model_fp16.tflite --prompt='def '
  keras-lm generate --model=saved_models/quickstart/saved_model --prompt='def '

--model runs an exported file instead of the Keras model (after `keras-lm
export`): a `.tflite` file through LiteRT, with the tokenizer.json beside it
and sampling in NumPy, or a SavedModel directory through its signatures.
Exported models do not stream and have no beam search.

A run made by `keras-lm finetune` has a prompt template: the prompt goes
through it (and is echoed as the model reads it); --raw turns it off.

--sampler defaults to what the other flags ask for: beam with --beam_width,
top_p with --top_p, top_k with --top_k, temperature with --temperature > 0,
else greedy.
"""

import sys

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.export.exported import load_exported
from keras_lm.generation import SAMPLERS, encode_prompts, generate, get_sampler, stream
from keras_lm.run import Run

# Each subcommand has its own flags, so they can share names (--batch_size).
FLAGS = flags.FlagValues()
DEFAULT_NEW_TOKENS = 200

flags.DEFINE_string(
    "model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
    flag_values=FLAGS)
flags.DEFINE_string(
    "model", None,
    "An exported model to run instead: a .tflite file or a SavedModel directory.",
    flag_values=FLAGS)
flags.DEFINE_string(
    "prompt", "", "Text to continue (empty: start a new document).", flag_values=FLAGS)
flags.DEFINE_integer(
    "max_new_tokens", None,
    f"Tokens to generate at most (default: {DEFAULT_NEW_TOKENS}, or what fits the context).",
    flag_values=FLAGS)
flags.DEFINE_enum(
    "sampler", None, SAMPLERS, "How tokens are picked (default: from the flags below).",
    flag_values=FLAGS)
flags.DEFINE_float(
    "temperature", None, "Softmax temperature; 0 is greedy.", flag_values=FLAGS)
flags.DEFINE_integer("top_k", None, "Sample among the k most likely tokens.", flag_values=FLAGS)
flags.DEFINE_float(
    "top_p", None, "Sample in the smallest set of tokens holding this probability.",
    flag_values=FLAGS)
flags.DEFINE_integer("beam_width", None, "Beams of beam search.", flag_values=FLAGS)
flags.DEFINE_integer(
    "num_samples", 1, "Continuations of the prompt, generated as one batch.", flag_values=FLAGS)
flags.DEFINE_integer("seed", None, "Seed that makes sampling reproducible.", flag_values=FLAGS)
flags.DEFINE_multi_string(
    "stop", [], "Stop a text before this string (repeatable).", flag_values=FLAGS)
flags.DEFINE_boolean(
    "raw", False, "Give the prompt to the model as it is: without the prompt template of a "
    "fine-tuned run (keras-lm finetune).", flag_values=FLAGS)
flags.DEFINE_enum(
    "truncate", "none", ["none", "left"],
    "A prompt too long for the context: error (none) or cut its beginning (left).",
    flag_values=FLAGS)


def inferred_sampler():
    if FLAGS.sampler:
        return FLAGS.sampler
    if FLAGS.beam_width is not None:
        return "beam"
    if FLAGS.top_p is not None:
        return "top_p"
    if FLAGS.top_k is not None:
        return "top_k"
    return "temperature" if FLAGS.temperature else "greedy"


def main():
    if FLAGS.num_samples < 1:
        raise UsageError(f"--num_samples must be >= 1, got {FLAGS.num_samples}")
    name = inferred_sampler()
    # Checked before the model loads; an option the sampler does not use is an error.
    sampler = get_sampler(
        name,
        temperature=None if name == "greedy" and not FLAGS.temperature else FLAGS.temperature,
        top_k=FLAGS.top_k,
        top_p=FLAGS.top_p,
        beam_width=FLAGS.beam_width,
    )
    if name == "beam" and FLAGS.num_samples > 1:
        raise UsageError(
            f"--num_samples={FLAGS.num_samples}: beam search gives one (deterministic) text"
        )
    options = dict(
        sampler=sampler,
        seed=FLAGS.seed,
        stop=FLAGS.stop,
        truncate=None if FLAGS.truncate == "none" else FLAGS.truncate,
    )
    if FLAGS.model is not None:
        return generate_exported(sampler)
    run = Run(FLAGS.model_dir)
    run.require(("text", "pairs", "task"), "generate")
    model, tokenizer = run.model, run.tokenizer
    # A fine-tuned run's template (none for a model trained from scratch).
    prompt = run.prompt_template(FLAGS.raw).apply(FLAGS.prompt)
    max_new_tokens = FLAGS.max_new_tokens
    if max_new_tokens is None:
        prompt_tokens = 1 + len(tokenizer.encode(prompt))
        max_new_tokens = max(1, min(DEFAULT_NEW_TOKENS, model.sequence_length - prompt_tokens))
    # The prompt must fit before any of it is echoed (an error after the
    # user's whole prompt would be lost in it).
    encode_prompts(tokenizer, [prompt], max_new_tokens, model.sequence_length,
                   options["truncate"])
    if FLAGS.num_samples == 1 and name != "beam":
        sys.stdout.write(prompt)  # as the model reads it, template included
        sys.stdout.flush()
        for piece in stream(model, tokenizer, prompt, max_new_tokens, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    _print_samples(
        generate(model, tokenizer, [prompt] * FLAGS.num_samples, max_new_tokens, **options),
        prompt)


def generate_exported(sampler):
    """`--model`: the same flags (`sampler` built from them), run on the exported file."""
    if FLAGS["model_dir"].present:
        raise UsageError("--model and --model_dir: give one (--model runs an exported file)")
    if sampler.name == "beam":
        raise UsageError(f"--sampler=beam: exported models have no beam search (--model={FLAGS.model})")
    if FLAGS.truncate != "none":
        raise UsageError(f"--truncate={FLAGS.truncate}: not available with --model")
    try:
        exported = load_exported(FLAGS.model)
    except UsageError as error:  # it names its `path` argument: the user typed --model
        raise UsageError(error.spelled_as("--model")) from None
    room = exported.sequence_length - exported.prompt_length(FLAGS.prompt, raw=FLAGS.raw)
    max_new_tokens = FLAGS.max_new_tokens
    if max_new_tokens is None:
        max_new_tokens = max(1, min(DEFAULT_NEW_TOKENS, room))
    elif not 0 < max_new_tokens <= room:
        raise UsageError(
            f"--max_new_tokens={max_new_tokens}: the prompt leaves room for 1..{room} new "
            f"tokens in the context of {exported.sequence_length}"
        )
    texts = exported.generate(
        [FLAGS.prompt] * FLAGS.num_samples, max_new_tokens,
        temperature=sampler.temperature,
        top_k=getattr(sampler, "top_k", 0),
        top_p=getattr(sampler, "top_p", 1.0),
        seed=FLAGS.seed,
        stop=FLAGS.stop,
        raw=FLAGS.raw,
    )
    _print_samples(texts, FLAGS.prompt)


def _print_samples(texts, prompt):
    for i, text in enumerate(texts):
        if len(texts) > 1:
            sys.stdout.write(f"--- sample {i + 1} of {len(texts)} ---\n")
        sys.stdout.write(prompt + text + "\n")


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
