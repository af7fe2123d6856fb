"""`keras-lm serve`: a trained model behind an OpenAI-compatible HTTP API.

`keras_lm.serve.server.serve` runs it; `ServerThread` runs one in a thread
(tests, benchmarks, notebooks); `create_app` is the ASGI app for any other
ASGI server. `Engine` decodes with a Keras model; `SavedModelEngine` (the
same methods) with a SavedModel from `keras-lm export` (`load_saved_model`).
"""

from keras_lm.serve.app import create_app
from keras_lm.serve.engine import Engine
from keras_lm.serve.saved_model_engine import SavedModelEngine, load_saved_model
from keras_lm.serve.server import ServerThread, bind, serve

__all__ = ["Engine", "SavedModelEngine", "ServerThread", "bind", "create_app",
           "load_saved_model", "serve"]
