"""Running the app: a bound socket, uvicorn, and a server in a thread (tests, benchmarks).

`serve(...)` is what `keras-lm serve` runs: it binds the port first (a
busy port is a `UsageError` before the model loads), loads the model,
compiles every program, then serves until interrupted.

Example (a tiny random model on a free port, in a thread; `warm_up=False`
skips compiling, so the first request would compile its programs):
>>> import json, urllib.request
>>> from keras_lm.models import TransformerLM
>>> from keras_lm.tokenizers import ByteTokenizer
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
>>> with ServerThread(model, ByteTokenizer(), max_batch_size=1, warm_up=False) as server:
...     with urllib.request.urlopen(server.url + "/health") as reply:
...         json.load(reply)["status"]
'ok'
"""

import errno
import logging
import socket
import sys
import threading
import time

import uvicorn

from keras_lm.errors import UsageError
from keras_lm.export.exported import ExportedSavedModel
from keras_lm.prompt_template import PromptTemplate
from keras_lm.generation import rows_supported
from keras_lm.serve.app import create_app
from keras_lm.serve.continuous_engine import ContinuousEngine
from keras_lm.serve.engine import Engine
from keras_lm.serve.saved_model_engine import SavedModelEngine
from keras_lm.serve.security import is_local

BATCHING = ("continuous", "static")

logger = logging.getLogger("keras_lm")


def bind(host, port):
    """A listening socket on `host:port`; a busy or unknown address is a `UsageError`."""
    if not (isinstance(port, int) and 0 <= port <= 65535):
        raise UsageError(f"port must be in 0..65535, got {port!r}", argument="port")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise UsageError(f"host: cannot resolve {host!r} ({error.strerror})",
                         argument="host") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT only
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UsageError(f"port: {host}:{port} is already in use (another server is "
                             "listening there; pick another --port)", argument="port") from None
        raise UsageError(f"host: cannot listen on {host}:{port} ({error.strerror})",
                         argument="host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def build(model, tokenizer, *, model_name="model", max_batch_size=16, batch_wait_seconds=0.01,
          steps_per_call=16, raw=False, warm_up=True, batching="continuous", max_queue=None,
          request_timeout=None, api_key=None, bind_host="127.0.0.1", allowed_origins=()):
    """`(app, engine)`: the engine (decoding thread, programs compiled) and the app over it.

    `model` is a Keras language model, or an `ExportedSavedModel`
    (`SavedModelEngine`: `load_saved_model` gives it with its tokenizer;
    `steps_per_call` and `batching` do not apply). A Keras model is batched
    continuously (`ContinuousEngine`) when its `decode` takes one position
    per row, else, or with `batching="static"`, statically (`Engine`). The
    prompt template is the run's (`model.run_config`, as `keras_lm.load`
    attaches it, or the exported tokenizer's; none for a model trained from
    scratch): completions apply it unless `raw`, and chat renders
    conversations with it. `max_queue`, `request_timeout`, `api_key`,
    `bind_host` and `allowed_origins`: see `create_app`.
    """
    if batching not in BATCHING:
        raise UsageError(f"batching must be one of {BATCHING}, got {batching!r}",
                         argument="batching")
    options = dict(max_batch_size=max_batch_size, batch_wait_seconds=batch_wait_seconds,
                   max_queue=max_queue)
    if isinstance(model, ExportedSavedModel):
        engine = SavedModelEngine(model, tokenizer, **options)
        template = engine.template
    else:
        template = PromptTemplate.from_run_config(getattr(model, "run_config", None))
        kind = Engine
        if batching == "continuous":
            kind = ContinuousEngine if rows_supported(model) else Engine
            if kind is Engine:
                logger.warning("this model's decode takes one position for the whole batch: "
                               "static batching")
        engine = kind(model, tokenizer, steps_per_call=steps_per_call, **options)
    if warm_up:
        start = time.monotonic()
        programs = engine.warm_up()
        logger.info("compiled %d programs in %.1f s", programs, time.monotonic() - start)
    app = create_app(engine, model_name=model_name, template=template, raw=raw, api_key=api_key,
                     bind_host=bind_host, allowed_origins=allowed_origins,
                     request_timeout=request_timeout)
    engine.on_batch = app.state.handlers.metrics.finished_batch
    return app, engine


def uvicorn_server(app, log_level="warning"):
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


class ServerThread:
    """A server on `127.0.0.1` (a free port by default) in a background thread.

    `with ServerThread(model, tokenizer, ...) as server:` serves at
    `server.url` until the block ends; keyword arguments go to `build`.
    """

    def __init__(self, model, tokenizer, host="127.0.0.1", port=0, **options):
        self.socket = bind(host, port)
        self.app, self.engine = build(model, tokenizer, bind_host=host, **options)
        self.server = uvicorn_server(self.app)
        host, port = self.socket.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self.server.run, kwargs=dict(sockets=[self.socket]),
                                        name="keras_lm-http", daemon=True)

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info):
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.engine.close()
        self.socket.close()


def serve(model, tokenizer, *, host="127.0.0.1", port=8000, sock=None, print_=print, **options):
    """Serves until interrupted (Ctrl-C): what `keras-lm serve` runs after loading the model."""
    sock = sock or bind(host, port)
    host, port = sock.getsockname()[:2]
    if not is_local(host) and not options.get("api_key"):
        print(f"warning: serving on {host} without an API key: anyone who can reach this "
              "machine can use the model (set --api_key or KERAS_LM_API_KEY)", file=sys.stderr,
              flush=True)
    app, engine = build(model, tokenizer, bind_host=host, **options)
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    print_(f"serving {options.get('model_name', 'model')!r} at {url} (playground: {url}/, "
           f"OpenAI API: {url}/v1, metrics: {url}/metrics); Ctrl-C stops")
    try:
        uvicorn_server(app).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops gracefully, then re-raises Ctrl-C: the normal end
        pass
    finally:
        engine.close()
        sock.close()
    print_("stopped")
