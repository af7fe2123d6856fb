"""Exporting trained models: SavedModel (servers) and TFLite/LiteRT (phones)."""

from keras_lm.export.saved_model import SIGNATURES, export_saved_model
