"""Process settings for the whole test run, doctests in keras_lm/ included
(tests/conftest.py holds the fixtures; this file is loaded before both).

Tried and dropped: XLA_FLAGS=--xla_backend_optimization_level=0. The tests'
XLA programs compiled ~20% faster, but ran slower (unvectorised code): the
suite went from (default) to 11:07 with its training- and scoring-heavy tests
slower (a 576-token evaluation doctest: 13.9 s -> 21.5 s alone).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
