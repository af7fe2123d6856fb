"""Tiny random keras-hub presets of each family, and their imports, built once per session.

Offline: HF_HUB_OFFLINE is set so that a handle never waits on the network.
`pretrained_runs` is in conftest's SHARED_RUNS: the tests that use it share
one worker, so the presets are built and imported once.
"""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FAMILIES = ("gpt2", "gemma3", "llama3")


@pytest.fixture(scope="session")
def pretrained_runs(tmp_path_factory):
    """`{name: run directory}` for each family's tiny preset and `hf_llama3`, a Hugging
    Face checkpoint (written by keras-hub's `export_to_transformers`), imported; and
    `{name: preset path}` under the key "presets"."""
    from keras_lm.pretrained import import_preset
    from keras_lm.pretrained.tiny_presets import (write_tiny_preset,
                                                  write_tiny_transformers_checkpoint)

    root = tmp_path_factory.mktemp("pretrained")
    presets = {family: write_tiny_preset(family, str(root / "presets")) for family in FAMILIES}
    presets["hf_llama3"] = write_tiny_transformers_checkpoint("llama3", str(root / "presets"))
    runs = {name: import_preset(path, str(root / "runs" / name)) for name, path in presets.items()}
    return {**runs, "presets": presets}


@pytest.fixture(scope="session")
def hub_models(pretrained_runs):
    """`{family: (keras-hub CausalLM from the preset, keras_lm model loaded from the run)}`."""
    import keras_hub

    import keras_lm

    return {family: (keras_hub.models.CausalLM.from_preset(pretrained_runs["presets"][family]),
                     keras_lm.load(pretrained_runs[family]))
            for family in FAMILIES}
