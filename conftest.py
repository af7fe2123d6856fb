"""Process settings for the whole test run, doctests in keras_lm/ included
(tests/conftest.py holds the fixtures; this file is loaded before both).

Tried and dropped: XLA_FLAGS=--xla_backend_optimization_level=0 for the
tests. Their XLA programs compiled ~20% faster but ran unvectorised code,
so the training- and scoring-heavy tests got slower (a 576-token evaluation
doctest: 13.9 s -> 21.5 s alone) and the suite as a whole was not faster.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
