"""Process settings for the whole test run, doctests in keras_lm/ included
(tests/conftest.py holds the fixtures; this file is loaded before both).

XLA_FLAGS: the tests compile many small XLA programs (a decoding loop per
shape bucket, training steps) and run each only briefly, so LLVM's
optimisation passes cost more than they save. At `-O0` the programs are the
same (XLA's HLO passes still run; only the machine code is less tuned) and
compile ~30% faster: the ragged-generation tests went from 97 s to 70 s.
Speed is measured by benchmarks/, which run at XLA's defaults. A user's own
XLA_FLAGS win.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
