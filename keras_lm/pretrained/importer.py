"""`import_preset`: a keras-hub causal LM preset written as a keras_lm run directory.

The run directory holds what every `--model_dir` command reads:

    model.keras      the model (`HubCausalLM`: the backbone behind the step API)
    tokenizer.json   the tokenizer (`HubTokenizer`: the preset's own, as JSON)
    config.json      source (the preset as given), architecture, parameters,
                     sequence_length, keras_hub_version, and the family's chat
                     format (`prompt_template`, `chat_reply_end`: see
                     `chat_templates`; also in tokenizer.json)
    preset/          the preset's own files, untouched (a local directory is
                     copied; a downloaded handle is saved with `save_to_preset`)

Everything is written into a temporary directory beside `output_dir` and
renamed at the end: a failure leaves nothing behind.
"""

import os
import shutil
import tempfile

from keras_lm.errors import UsageError
from keras_lm.io_utils import write_json
from keras_lm.pretrained.chat_templates import chat_template, hf_chat_template
from keras_lm.prompt_template import CONFIG_KEY

PRESET_FOLDER = "preset"
HANDLE_SCHEMES = ("kaggle://", "hf://", "gs://", "modelscope://")


def import_preset(preset, output_dir, sequence_length=None):
    """Imports `preset` (a keras-hub preset name, a `kaggle://` or `hf://` handle, or a
    local keras-hub preset or Hugging Face checkpoint directory) into `output_dir`.

    `sequence_length` is the context the run uses (default: GPT-2's positions,
    else the preset's preprocessor's `sequence_length`). Returns `output_dir`.
    Mistakes (no such directory, a missing file, a preset that is not a
    causal LM, an unsupported architecture, a handle that needs the network
    when there is none, an `output_dir` that is not empty) raise `UsageError`
    naming the argument, and write nothing.

    Example (offline, a tiny random GPT-2):
    >>> import tempfile, keras_lm
    >>> from keras_lm.pretrained.tiny_presets import write_tiny_preset
    >>> preset = write_tiny_preset("gpt2", tempfile.mkdtemp())
    >>> run = import_preset(preset, os.path.join(tempfile.mkdtemp(), "run"))
    >>> keras_lm.load(run).run_config["architecture"]
    'gpt2'
    """
    output_dir = os.fspath(output_dir)
    _check_output_dir(output_dir)
    causal_lm = load_causal_lm(preset)
    model, tokenizer = to_keras_lm(causal_lm, sequence_length)
    config = run_config(preset, model)
    tokenizer.prompt_template = config[CONFIG_KEY]  # what an export applies
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".import-", dir=parent)
    try:
        _write_preset_files(preset, causal_lm, os.path.join(staging, PRESET_FOLDER))
        model.save(os.path.join(staging, "model.keras"))
        tokenizer.save(os.path.join(staging, "tokenizer.json"))
        write_json(os.path.join(staging, "config.json"), config)
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # checked empty above
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def run_config(preset, model):
    """The imported run's `config.json`: where it came from and what it is."""
    import keras_hub

    local = os.path.isdir(os.fspath(preset))
    template = chat_template(model.architecture, hf_chat_template(preset) if local else None)
    return {
        **template.to_config(),
        "source": os.fspath(preset),
        "architecture": model.architecture,
        "parameters": model.parameter_count(),
        "sequence_length": model.sequence_length,
        "keras_hub_version": keras_hub.__version__,
        "preset_folder": PRESET_FOLDER,
    }


def _check_output_dir(output_dir):
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise UsageError(f"output_dir: {output_dir!r} exists and is not an empty directory",
                         argument="output_dir")


def load_causal_lm(preset):
    """keras-hub's `CausalLM.from_preset(preset)`, its failures as one-line `UsageError`s."""
    import keras_hub

    preset = os.fspath(preset)
    is_handle = preset.startswith(HANDLE_SCHEMES)
    if not is_handle:
        if os.path.isdir(preset):
            if not os.path.isfile(os.path.join(preset, "config.json")):
                raise UsageError(f"preset: no config.json in {preset!r} (not a keras-hub preset "
                                 "or Hugging Face checkpoint directory)", argument="preset")
        elif os.sep in preset or preset.startswith("."):
            raise UsageError(f"preset: no such directory {preset!r}", argument="preset")
        elif preset not in keras_hub.models.CausalLM.presets:
            raise UsageError(f"preset: {preset!r} is neither a directory, a handle "
                             "(kaggle://, hf://) nor a keras-hub causal LM preset name",
                             argument="preset")
    try:
        return keras_hub.models.CausalLM.from_preset(preset)
    except (OSError, ValueError, KeyError, TypeError, ImportError) as error:
        raise UsageError(f"preset: cannot load {preset!r} as a keras-hub causal LM: "
                         f"{_one_line(error)}{_network_hint(is_handle)}",
                         argument="preset") from None
    except Exception as error:  # noqa: BLE001  (hub clients raise their own errors offline)
        if not is_handle and os.path.isdir(preset):
            raise
        raise UsageError(f"preset: cannot fetch {preset!r}: {_one_line(error)}"
                         f"{_network_hint(True)}", argument="preset") from None


def _network_hint(is_handle):
    if not is_handle:
        return ""
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("KAGGLE_OFFLINE")
    return (" (offline: HF_HUB_OFFLINE is set)" if offline else
            " (a handle is downloaded: it needs the network, or a local copy of the preset)")


def _one_line(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def to_keras_lm(causal_lm, sequence_length=None):
    """`(HubCausalLM, HubTokenizer)` of a keras-hub `CausalLM`; UsageError if unsupported."""
    from keras_lm.models.hub_causal_lm import HubCausalLM
    from keras_lm.tokenizers.hub_tokenizer import HubTokenizer

    preprocessor = getattr(causal_lm, "preprocessor", None)
    if preprocessor is None or getattr(preprocessor, "tokenizer", None) is None:
        raise UsageError("preset: it has no tokenizer (keras_lm reads text)", argument="preset")
    if sequence_length is None and not hasattr(causal_lm.backbone, "max_sequence_length"):
        sequence_length = getattr(preprocessor, "sequence_length", None)
    if sequence_length is not None and (isinstance(sequence_length, bool)
                                        or not isinstance(sequence_length, int)
                                        or sequence_length < 2):
        raise UsageError(f"sequence_length must be an integer >= 2, got {sequence_length!r}",
                         argument="sequence_length")
    tokenizer = HubTokenizer(preprocessor.tokenizer)
    try:
        model = HubCausalLM(causal_lm.backbone, sequence_length=sequence_length,
                            pad_id=tokenizer.pad_id)
    except ValueError as error:
        argument = "sequence_length" if str(error).startswith("sequence_length") else "preset"
        message = str(error)
        if argument == "preset":
            message = f"preset: {type(causal_lm).__name__}: {message}"
        raise UsageError(message, argument=argument) from None
    return model, tokenizer


def _write_preset_files(preset, causal_lm, destination):
    """The preset's own files: a local directory copied, else the loaded preset saved."""
    if os.path.isdir(os.fspath(preset)):
        shutil.copytree(preset, destination)
    else:
        causal_lm.save_to_preset(destination)
