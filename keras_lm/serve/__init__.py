"""`keras-lm serve`: a trained model behind an OpenAI-compatible HTTP API.

`keras_lm.serve.server.serve` runs it; `ServerThread` runs one in a thread
(tests, benchmarks, notebooks); `create_app` is the ASGI app for any other
ASGI server.
"""

from keras_lm.serve.app import create_app
from keras_lm.serve.engine import Engine
from keras_lm.serve.server import ServerThread, bind, serve

__all__ = ["Engine", "ServerThread", "bind", "create_app", "serve"]
