"""keras-lm serve: a trained model behind an OpenAI-compatible HTTP API, with a playground.

Examples:
  keras-lm serve --model_dir=saved_models/quickstart
  keras-lm serve --model_dir=saved_models/quickstart --port=8080 --max_batch_size=32
  keras-lm serve --model=saved_models/quickstart/saved_model
  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
      -d '{"prompt": "def ", "max_tokens": 40, "temperature": 0}'

Open http://127.0.0.1:8000/ in a browser for the playground. Endpoints:
/v1/completions (OpenAI's schema, streaming with "stream": true),
/v1/chat/completions (a run made by `keras-lm finetune`: the conversation is
rendered by its prompt template), /v1/models, /health, /metrics (Prometheus).

--model=MODEL_DIR/saved_model serves the SavedModel `keras-lm export` wrote,
with TensorFlow only (no Keras model): the same API, but each row's text
arrives whole (a stream sends it as one chunk), rows share a call only when
that cannot change their text, and there are no logprobs (docs/serving.md).

A fine-tuned run's prompt template is applied to completion prompts, as
`keras-lm generate` does; --raw turns that off (chat still uses it).
Requests are batched continuously (--batching=continuous): a request joins
the running batch of up to --max_batch_size rows at its next compiled call
and leaves it when done; --batching=static decodes the rows that arrived
together until the last one ends. Every batch size is compiled at start-up,
which takes a while for a large --max_batch_size.

Left running: --api_key (or KERAS_LM_API_KEY) makes every endpoint but
/health and the playground page ask for `Authorization: Bearer KEY`;
browsers' pages from other origins are refused unless in --allowed_origins;
--max_queue rows may wait (then 503 with Retry-After); --request_timeout
ends a request that runs too long.
"""

import os
import sys

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.run import Run

FLAGS = flags.FlagValues()

flags.DEFINE_string(
    "model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
    flag_values=FLAGS)
flags.DEFINE_string(
    "model", None,
    "A SavedModel directory written by `keras-lm export` (MODEL_DIR/saved_model), served "
    "without Keras, instead of --model_dir.", flag_values=FLAGS)
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).",
                    flag_values=FLAGS)
flags.DEFINE_integer("port", 8000, "Port to listen on.", flag_values=FLAGS)
flags.DEFINE_integer(
    "max_batch_size", 16, "Rows (prompts x n) decoded together at most; 1 decodes one at a time. "
    "Rows beyond it wait for a free slot, however the batching.",
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
flags.DEFINE_enum(
    "batching", "continuous", ["continuous", "static"],
    "continuous: requests join the running batch at its next compiled call and leave when "
    "done; static: the rows that arrived together decode until the last one ends.",
    flag_values=FLAGS)
flags.DEFINE_string(
    "api_key", None, "Require `Authorization: Bearer API_KEY` on every endpoint but /health and "
    "the playground page (default: the KERAS_LM_API_KEY environment variable; none: open).",
    flag_values=FLAGS)
flags.DEFINE_list(
    "allowed_origins", [], "Web origins (https://app.example.com) and host names allowed besides "
    "localhost's: browser pages there may call the API; '*' allows any.", flag_values=FLAGS)
flags.DEFINE_integer(
    "max_queue", 256, "Rows that may wait for a batch; requests beyond get 503 with Retry-After.",
    flag_values=FLAGS)
flags.DEFINE_float(
    "request_timeout", 300.0, "Seconds a request may take; past it its rows stop (finish_reason "
    "'length', or 504 before any text). 0: no limit.", flag_values=FLAGS)


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
    if FLAGS.max_queue < 1:
        raise UsageError(f"--max_queue must be >= 1, got {FLAGS.max_queue}")
    if not FLAGS.request_timeout >= 0:  # NaN too
        raise UsageError(f"--request_timeout must be >= 0 (0: no limit), got "
                         f"{FLAGS.request_timeout}")
    api_key = FLAGS.api_key if FLAGS.api_key is not None else os.environ.get("KERAS_LM_API_KEY")
    if api_key is not None and not api_key.strip():
        raise UsageError("--api_key: empty (give a key, or leave the flag and KERAS_LM_API_KEY "
                         "unset for an open server)")
    # The port first: a busy one fails in a second, not after the model loads.
    sock = bind(FLAGS.host, FLAGS.port)
    try:
        model, tokenizer, path = _load()
    except UsageError:
        sock.close()
        raise
    name = FLAGS.model_name or _default_name(path)
    print("compiling the decoding programs" + (
        f" for batch sizes up to {FLAGS.max_batch_size}" if FLAGS.model is None else "") + " ...",
          file=sys.stderr, flush=True)
    serve(model, tokenizer, sock=sock, model_name=name, max_batch_size=FLAGS.max_batch_size,
          batch_wait_seconds=FLAGS.batch_wait_ms / 1000, steps_per_call=FLAGS.steps_per_call,
          raw=FLAGS.raw, batching=FLAGS.batching, api_key=api_key,
          allowed_origins=FLAGS.allowed_origins, max_queue=FLAGS.max_queue,
          request_timeout=FLAGS.request_timeout or None,
          print_=lambda line: print(line, flush=True))


def _load():
    """`(model, tokenizer, path)`: the Keras model of --model_dir or the SavedModel of --model."""
    if FLAGS.model is None:
        run = Run(FLAGS.model_dir)
        run.require(("text", "pairs"), "serve")  # before the model loads
        return run.model, run.tokenizer, FLAGS.model_dir
    if FLAGS["model_dir"].present:
        raise UsageError("--model and --model_dir: give one (--model serves a SavedModel "
                         "directory, --model_dir a training run)")
    from keras_lm.serve.saved_model_engine import load_saved_model

    try:
        model, tokenizer = load_saved_model(FLAGS.model)
    except UsageError as error:  # it names its `path` argument: the user typed --model
        raise UsageError(error.spelled_as("--model")) from None
    return model, tokenizer, FLAGS.model


def _default_name(path):
    """The directory's name; for --model=MODEL_DIR/saved_model, the run's."""
    path = os.path.normpath(os.path.abspath(path) if FLAGS.model else path)
    if FLAGS.model is not None and os.path.basename(path) == "saved_model":
        path = os.path.dirname(path)
    return os.path.basename(path)


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
