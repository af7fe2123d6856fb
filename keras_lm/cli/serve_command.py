"""keras-lm serve: a trained model behind an OpenAI-compatible HTTP API, with a playground.

Examples:
  keras-lm serve --model_dir=saved_models/quickstart
  keras-lm serve --model_dir=saved_models/quickstart --port=8080 --max_batch_size=16
  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
      -d '{"prompt": "def ", "max_tokens": 40, "temperature": 0}'

Open http://127.0.0.1:8000/ in a browser for the playground. Endpoints:
/v1/completions (OpenAI's schema, streaming with "stream": true),
/v1/chat/completions (a run made by `keras-lm finetune`: the conversation is
rendered by its prompt template), /v1/models, /health, /metrics (Prometheus).

A fine-tuned run's prompt template is applied to completion prompts, as
`keras-lm generate` does; --raw turns that off (chat still uses it). Requests that arrive together are decoded as
one batch of up to --max_batch_size rows (1: one at a time); every batch
size is compiled at start-up, which takes a while for a large --max_batch_size.
"""

import os
import sys

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.model_dir import load_model_dir

FLAGS = flags.FlagValues()

flags.DEFINE_string(
    "model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
    flag_values=FLAGS)
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).",
                    flag_values=FLAGS)
flags.DEFINE_integer("port", 8000, "Port to listen on.", flag_values=FLAGS)
flags.DEFINE_integer(
    "max_batch_size", 8, "Rows (prompts x n) decoded together at most; 1 decodes one at a time.",
    flag_values=FLAGS)
flags.DEFINE_float(
    "batch_wait_ms", 10.0, "How long a request waits for others to share its batch.",
    flag_values=FLAGS)
flags.DEFINE_integer(
    "steps_per_call", 16,
    "Tokens decoded per compiled call after the first token: streaming sends text this often "
    "(each call costs a few steps' time on top).", flag_values=FLAGS)
flags.DEFINE_boolean(
    "raw", False, "Give completion prompts to the model as they are: without the prompt "
    "template of a fine-tuned run (as `keras-lm generate --raw`); chat still uses it.",
    flag_values=FLAGS)
flags.DEFINE_string(
    "model_name", None, "The model's id in the API (default: the model directory's name).",
    flag_values=FLAGS)


def main():
    try:  # the `serve` extra: FastAPI, uvicorn, prometheus-client
        from keras_lm.serve.server import bind, serve
    except ImportError as error:
        raise UsageError(f"keras-lm serve needs the serve extra (pip install 'keras-lm[serve]'): "
                         f"{error}") from None
    if FLAGS.max_batch_size < 1:
        raise UsageError(f"--max_batch_size must be >= 1, got {FLAGS.max_batch_size}")
    if FLAGS.steps_per_call < 1:
        raise UsageError(f"--steps_per_call must be >= 1, got {FLAGS.steps_per_call}")
    if FLAGS.batch_wait_ms < 0:
        raise UsageError(f"--batch_wait_ms must be >= 0, got {FLAGS.batch_wait_ms}")
    # The port first: a busy one fails in a second, not after the model loads.
    sock = bind(FLAGS.host, FLAGS.port)
    try:
        model, tokenizer, _ = load_model_dir(FLAGS.model_dir)
    except UsageError:
        sock.close()
        raise
    name = FLAGS.model_name or os.path.basename(os.path.normpath(FLAGS.model_dir))
    print(f"compiling the decoding programs for batch sizes up to {FLAGS.max_batch_size} ...",
          file=sys.stderr, flush=True)
    serve(model, tokenizer, sock=sock, model_name=name, max_batch_size=FLAGS.max_batch_size,
          batch_wait_seconds=FLAGS.batch_wait_ms / 1000, steps_per_call=FLAGS.steps_per_call,
          raw=FLAGS.raw,
          print_=lambda line: print(line, flush=True))


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
