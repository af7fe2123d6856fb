"""Exporting trained models: SavedModel (servers) and TFLite/LiteRT (phones).

`export` writes both, with the LiteRT bundle (tokenizer JSON, metadata) and
parity figures; `export_saved_model` and `export_tflite` write one format.
`litert_runner` runs the `.tflite` files with NumPy and LiteRT only;
`ExportSchema` is the one description of the step API both formats carry.
"""

from keras_lm.export.bundle import FORMATS, VARIANTS, VerificationError, export
from keras_lm.export.json_tokenizer import JsonTokenizer
from keras_lm.export.litert_runner import LiteRTRunner
from keras_lm.export.saved_model import SIGNATURES, export_saved_model
from keras_lm.export.schema import ExportSchema
from keras_lm.export.tflite import QUANTIZATIONS, TFLiteExport, export_tflite
