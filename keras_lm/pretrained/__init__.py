"""Pretrained keras-hub causal LMs imported into keras_lm run directories.

`import_preset(preset, output_dir)` (`keras-lm import`) writes a run
directory that `keras_lm.load` and every `--model_dir` command read.
"""

from keras_lm.pretrained.importer import import_preset

__all__ = ["import_preset"]
