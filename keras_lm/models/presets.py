"""Named model sizes for each family."""

from keras_lm.errors import UsageError

PRESETS = {
    "transformer": {
        # For tests: builds and trains in a second.
        "tiny": dict(num_layers=2, num_heads=2, hidden_dim=32, sequence_length=64),
        # CPU-friendly: the quickstart model (0.83M parameters at 259 ids).
        "small": dict(num_layers=4, num_heads=4, hidden_dim=128, sequence_length=256),
        # Larger: hours on a laptop, minutes on a GPU.
        "base": dict(num_layers=8, num_heads=8, hidden_dim=512, sequence_length=512),
    },
    "lstm": {
        "tiny": dict(embedding_dim=32, hidden_dim=64, num_layers=1, sequence_length=64),
        "small": dict(embedding_dim=64, hidden_dim=256, num_layers=2, sequence_length=128),
        "base": dict(embedding_dim=256, hidden_dim=1024, num_layers=2, sequence_length=256),
    },
}


def preset_config(family, preset):
    """The constructor arguments of `preset` for a model `family`."""
    if preset not in PRESETS[family]:
        raise UsageError(
            f"unknown preset {preset!r} for {family}; choose from {', '.join(PRESETS[family])}"
        )
    return dict(PRESETS[family][preset])
