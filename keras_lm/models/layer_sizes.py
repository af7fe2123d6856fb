"""Per-layer sizes in a model's configuration: an int for every layer, or one per layer.

Models saved before pruning existed give one int (`num_heads=4`); a pruned
model gives one per layer (`num_heads=[4, 3]`). Both read the same here.
"""


def per_layer(value, num_layers, name, minimum=1):
    """`value` (an int, or one int per layer) as a tuple of `num_layers` ints.

    Example:
    >>> per_layer(4, 2, "num_heads"), per_layer([4, 3], 2, "num_heads")
    ((4, 4), (4, 3))
    """
    if isinstance(value, (list, tuple)):
        if len(value) != num_layers:
            raise ValueError(
                f"{name} must be an int or one int per layer ({num_layers}), got {value!r}"
            )
        values = tuple(int(v) for v in value)
    else:
        values = (int(value),) * num_layers
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum} in every layer, got {value!r}")
    return values


def default_head_dim(hidden_dim, layer_num_heads):
    """`hidden_dim // num_heads` where every layer has the same count `num_heads`."""
    if len(set(layer_num_heads)) > 1:
        raise ValueError(
            f"head_dim is needed when layers differ in head count, got num_heads="
            f"{list(layer_num_heads)} and no head_dim"
        )
    if hidden_dim % layer_num_heads[0]:
        raise ValueError(
            f"num_heads={layer_num_heads[0]} must divide hidden_dim={hidden_dim} "
            "(or give head_dim)"
        )
    return hidden_dim // layer_num_heads[0]
