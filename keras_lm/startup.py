"""TensorFlow's start-up chatter, kept off the user's terminal.

On import and at device start-up TensorFlow's C++ runtime prints INFO lines
("Could not find cuda drivers ...", "This TensorFlow binary is optimized
...") straight to file descriptor 2, before absl logging exists, so neither
`TF_CPP_MIN_LOG_LEVEL` nor absl's verbosity reaches them. They hide our own
output and say nothing about the user's work. `import keras_lm` and the
command line run TensorFlow's start-up inside `quiet_tensorflow_startup`.

This module imports nothing heavy: it must run before TensorFlow loads.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def quiet_tensorflow_startup():
    """Drops TensorFlow's C++ start-up INFO lines from stderr; keeps every other line.

    Example:
    >>> with quiet_tensorflow_startup():
    ...     import tensorflow
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a closed stderr): nothing to filter
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines(True):
                if not is_startup_noise(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def is_startup_noise(line):
    """Whether `line` is one of TensorFlow's start-up INFO lines."""
    return line.startswith(("I0000 ", "WARNING: All log messages before absl")) or (
        line.startswith("E0000 ") and "cuInit" in line  # no GPU driver: expected on CPU
    )
