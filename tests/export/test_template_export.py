"""The prompt template travels with exports: the SavedModel applies it in the graph."""

import keras
import pytest

from keras_lm.export.exported import ExportedSavedModel
from keras_lm.export.saved_model import RAW_SIGNATURE, export_saved_model
from keras_lm.generation import generate
from keras_lm.models import LSTMLM
from keras_lm.tokenizers import ByteTokenizer

TEMPLATE = "Q {prompt} A "


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(4)
    model = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=32)
    tokenizer = ByteTokenizer()
    tokenizer.prompt_template = TEMPLATE
    path = str(tmp_path_factory.mktemp("template") / "saved_model")
    export_saved_model(model, tokenizer, path)
    return model, tokenizer, path


def test_serving_default_puts_prompts_through_the_template(exported):
    model, tokenizer, path = exported
    served = ExportedSavedModel(path)
    assert RAW_SIGNATURE in served.signatures
    templated = generate(model, tokenizer, "Q x = 1 A ", 8)
    assert served.generate(["x = 1"], 8) == [templated]
    # Raw: the prompt as given (here already through the template by hand).
    assert served.generate(["Q x = 1 A "], 8, raw=True) == [templated]
    assert served.generate(["x = 1"], 8, raw=True) != [templated]
    default = served.signatures["serving_default"](
        prompts=keras.ops.convert_to_tensor(["x = 1"]),
        max_new_tokens=keras.ops.convert_to_tensor(8, "int32"))["text"]
    assert default.numpy()[0].decode("utf-8", "replace") == templated
