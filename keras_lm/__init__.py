"""keras_lm: build, train, inspect and ship small language models.

Importing the package registers every serialisable class (models, layers),
so `keras.models.load_model` reads a keras_lm `.keras` file; `keras_lm.load`
also attaches the tokenizer and the run's settings:

    import keras_lm
    model = keras_lm.load("saved_models/quickstart")
    print(model.generate("def ", 100))
"""

from keras_lm.startup import quiet_tensorflow_startup

__version__ = "0.1.0"

with quiet_tensorflow_startup():  # this is where TensorFlow starts
    from keras_lm import layers, models  # noqa: F401  (registers the classes)
    from keras_lm.model_dir import load

__all__ = ["load", "layers", "models"]
