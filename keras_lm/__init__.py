"""keras_lm: build, train, inspect and ship small language models.

Importing the package registers every serialisable class (models, layers),
so `keras.models.load_model` reads a keras_lm `.keras` file; `keras_lm.load`
also attaches the tokenizer and the run's settings:

    import keras_lm
    model = keras_lm.load("saved_models/quickstart")
    print(model.generate("def ", 100))

`keras_lm.Run(path)` is a run directory as one object (its kind, and
evaluate / export / generate / classify); it is imported on first use, so
`import keras_lm` stays as quick as the models alone.
"""

from keras_lm.startup import quiet_tensorflow_startup

__version__ = "0.1.0"

with quiet_tensorflow_startup():  # this is where TensorFlow starts
    from keras_lm import layers, models  # noqa: F401  (registers the classes)
    from keras_lm.model_dir import load

__all__ = ["Run", "import_preset", "load", "layers", "models"]


def __getattr__(name):
    # Run pulls in export, scoring and adaptation: only when asked for.
    if name == "Run":
        from keras_lm.run import Run

        return Run
    if name == "import_preset":  # a pretrained keras-hub model as a run directory
        from keras_lm.pretrained import import_preset

        return import_preset
    raise AttributeError(f"module 'keras_lm' has no attribute {name!r}")
