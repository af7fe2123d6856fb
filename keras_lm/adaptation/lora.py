"""LoRA on a keras_lm Transformer: Keras' `enable_lora` on our Dense layers, and adapter files.

The targets are the names of the `Dense` layers of each `TransformerBlock`:
`qkv` (queries, keys and values: one fused layer, kept fused so saved
models stay loadable), `output` (the attention's output projection),
`mlp_in` and `mlp_out`. `enable_lora` adds to each a trainable low-rank
update `(lora_alpha / rank) * A @ B` (B starts at zero, so the model starts
as the base) and freezes every other weight of the model.

Keras' own saving merges the update into the kernel, so a `model.keras`
written after LoRA training is a plain model every export reads.
`save_adapters` writes the adapters alone (A and B of each target) in a small
format of ours, a NumPy `.npz` file with a JSON header that records the rank,
alpha, targets and the base's weights digest; `load_adapters` puts them back
onto the same base, and refuses any other.

An imported keras-hub model (`HubCausalLM`) takes the same four target
names, mapped per family onto its layers' own projections (`HUB_TARGETS`):
`qkv` is the separate query, key and value projections, `mlp_in` the MLP's
input projections (with the gate where the family has one) and `mlp_out`
its output projection. Each is a Keras `Dense`/`EinsumDense` with its own
`enable_lora(rank, lora_alpha)`; keras-hub's `Backbone.enable_lora` would
reach only queries and values, without alpha.

LSTM models have no Dense layer inside their recurrent cells (Keras' LSTM
keeps its own kernels), so LoRA is refused for them with one line.

Example:
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
>>> info = enable_lora(model, rank=2, targets=("qkv", "mlp_out"))
>>> info["trainable_parameters"] == sum(int(w.numpy().size) for w in model.trainable_weights)
True
"""

import hashlib
import io
import json
import os

import numpy as np

from keras_lm.errors import UsageError
from keras_lm.io_utils import write_bytes

TARGETS = ("qkv", "output", "mlp_in", "mlp_out")
ADAPTER_FORMAT = "keras_lm.lora_adapters"
ADAPTER_FILE = "adapters.npz"
_HEADER = "__header__"
# keras-hub family -> target -> attribute paths from each transformer layer.
_SELF_ATTENTION = "_self_attention_layer"
_GATED_MLP = {"mlp_in": ("_feedforward_gate_dense", "_feedforward_intermediate_dense"),
              "mlp_out": ("_feedforward_output_dense",)}
_KERAS_HUB_ATTENTION = {
    "qkv": tuple(f"{_SELF_ATTENTION}.{name}"
                 for name in ("_query_dense", "_key_dense", "_value_dense")),
    "output": (f"{_SELF_ATTENTION}._output_dense",)}
HUB_TARGETS = {
    "gpt2": {**_KERAS_HUB_ATTENTION, "mlp_in": ("_feedforward_intermediate_dense",),
             "mlp_out": ("_feedforward_output_dense",)},
    "llama": {**_KERAS_HUB_ATTENTION, **_GATED_MLP},
    "llama3": {**_KERAS_HUB_ATTENTION, **_GATED_MLP},
    "qwen3": {**_KERAS_HUB_ATTENTION, **_GATED_MLP},
    "gemma3": {"qkv": ("attention.query_dense", "attention.key_dense", "attention.value_dense"),
               "output": ("attention.output_dense",), "mlp_in": ("gating_ffw", "gating_ffw_2"),
               "mlp_out": ("ffw_linear",)},
}


def check_lora(model, rank, alpha=None, targets=TARGETS):
    """Checks LoRA settings for `model`; returns the targets as a tuple (UsageError if bad)."""
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank <= 0:
        raise UsageError(f"lora_rank must be an integer > 0, got {rank!r}", argument="lora_rank")
    if alpha is not None and not alpha > 0:
        raise UsageError(f"lora_alpha must be > 0, got {alpha!r}", argument="lora_alpha")
    targets = tuple(targets.split(",") if isinstance(targets, str) else targets)
    bad = [t for t in targets if t not in TARGETS]
    if bad or not targets:
        raise UsageError(f"lora_targets must be some of {', '.join(TARGETS)}, got "
                         f"{', '.join(targets) or 'none'}", argument="lora_targets")
    if not supports_lora(model):
        raise UsageError(
            f"lora_rank={rank}: LoRA needs Dense layers, and this {type(model).__name__} keeps "
            "its weights in Keras' LSTM cells, where enable_lora does not exist; fine-tune it "
            "fully (leave out lora_rank)", argument="lora_rank")
    return tuple(dict.fromkeys(targets))


def supports_lora(model):
    """Whether `model` has the Dense layers LoRA goes on (a Transformer of ours or keras-hub's)."""
    return hasattr(model, "blocks") or getattr(model, "architecture", None) in HUB_TARGETS


def target_layers(model, targets=TARGETS):
    """`{"block_{i}/{target}": Dense layer}` of a `TransformerLM`; of a `HubCausalLM`
    `{"block_{i}/{target}/{projection}": layer}` (e.g. `block_0/qkv/query_dense`)."""
    layers = {}
    if not hasattr(model, "blocks"):
        paths = HUB_TARGETS[model.architecture]
        for i, block in enumerate(model.backbone.transformer_layers):
            for target in targets:
                for path in paths[target]:
                    layer = block
                    for attribute in path.split("."):
                        layer = getattr(layer, attribute)
                    layers[f"block_{i}/{target}/{path.rsplit('.', 1)[-1].lstrip('_')}"] = layer
        return layers
    for i, block in enumerate(model.blocks):
        found = {"qkv": block.attention.qkv, "output": block.attention.output_dense,
                 "mlp_in": block.mlp_in, "mlp_out": block.mlp_out}
        for target in targets:
            if found[target] is not None:  # attention-only blocks have no MLP
                layers[f"block_{i}/{target}"] = found[target]
    return layers


def enable_lora(model, rank, alpha=None, targets=TARGETS):
    """Adds LoRA of `rank` to `targets` and freezes every other weight of `model`.

    `alpha` scales the update by `alpha / rank` (default `alpha = rank`:
    a scale of 1). Call it before `compile`. Returns
    `{"rank", "alpha", "targets", "trainable_parameters", "parameters",
    "base_weights_digest"}`; the digest is the base's (before LoRA), what an
    adapter file records.
    """
    targets = check_lora(model, rank, alpha, targets)
    digest = base_weights_digest(model)
    alpha = float(alpha if alpha is not None else rank)
    for layer in target_layers(model, targets).values():
        if layer.lora_enabled:
            raise UsageError(f"lora_rank={rank}: LoRA is already enabled on {layer.path}",
                             argument="lora_rank")
        layer.enable_lora(rank, lora_alpha=alpha)
    for weight in model.weights:
        if not is_lora_weight(weight):
            weight.trainable = False
    return {"rank": int(rank), "alpha": alpha, "targets": list(targets),
            "trainable_parameters": count_trainable(model),
            "parameters": int(sum(np.prod(w.shape) for w in model.weights
                                  if not is_lora_weight(w))),
            "base_weights_digest": digest}


def count_trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def base_weights_digest(model):
    """SHA-256 of the model's weights without LoRA's (the base's own, as loaded).

    The same as `keras_lm.training.distribute.weights_digest` of the base
    before LoRA: Keras keeps a LoRA layer's frozen kernel as it was.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        if is_lora_weight(weight):
            continue
        value = weight.numpy()
        digest.update(f"{value.shape}:{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def is_lora_weight(weight):
    """Whether `weight` is one of LoRA's A or B matrices."""
    return weight.path.rsplit("/", 1)[-1].startswith("lora_kernel_")


def save_adapters(model, path, base_digest):
    """Writes the LoRA weights of `model` alone to `path` (`.npz`), with `base_digest`.

    Example:
    >>> import tempfile
    >>> from keras_lm.models import TransformerLM
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
    >>> info = enable_lora(model, rank=2)
    >>> path = os.path.join(tempfile.mkdtemp(), "adapters.npz")
    >>> save_adapters(model, path, info["base_weights_digest"])
    >>> fresh = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
    >>> fresh.set_weights([w.numpy() for w in model.weights if "lora" not in w.path])
    >>> load_adapters(fresh, path)["rank"]
    2
    """
    layers = {name: layer for name, layer in target_layers(model).items() if layer.lora_enabled}
    if not layers:
        raise UsageError("model: no LoRA adapters to save (enable_lora first)", argument="model")
    first = next(iter(layers.values()))
    header = {"format": ADAPTER_FORMAT, "version": 1, "rank": int(first.lora_rank),
              "alpha": float(first.lora_alpha),
              "targets": sorted({name.split("/")[1] for name in layers}, key=TARGETS.index),
              "base_weights_digest": base_digest, "model_config": _config_summary(model)}
    arrays = {_HEADER: np.array(json.dumps(header))}
    for name, layer in layers.items():
        arrays[f"{name}/lora_kernel_a"] = layer.lora_kernel_a.numpy()
        arrays[f"{name}/lora_kernel_b"] = layer.lora_kernel_b.numpy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def read_adapters(path, argument="adapters"):
    """`(header dict, {name: array})` of an adapter file, or UsageError naming `argument`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"{argument}: {path!r} does not exist", argument=argument)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(str(arrays.pop(_HEADER)))
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"{argument}: {path!r} is not a keras_lm adapter file ({error})",
                         argument=argument) from None
    if header.get("format") != ADAPTER_FORMAT:
        raise UsageError(f"{argument}: {path!r} is not a keras_lm adapter file (format "
                         f"{header.get('format')!r})", argument=argument)
    return header, arrays


def load_adapters(model, path, argument="adapters"):
    """Puts the adapters of `path` onto `model`, which must be their base.

    The base is checked by its weights digest: adapters trained on another
    model (or another version of it) raise UsageError. LoRA is enabled on
    the recorded targets (every other weight frozen, as in `enable_lora`),
    and A and B are set. Returns the `enable_lora` information.
    """
    header, arrays = read_adapters(path, argument)
    digest = base_weights_digest(model)
    if digest != header["base_weights_digest"]:
        raise UsageError(
            f"{argument}: {path!r} was trained on another base (weights digest "
            f"{header['base_weights_digest'][:12]}..., this model's is {digest[:12]}...); load "
            "it onto the model it was trained from", argument=argument)
    info = enable_lora(model, header["rank"], header["alpha"], header["targets"])
    for name, layer in target_layers(model, header["targets"]).items():
        for part in ("lora_kernel_a", "lora_kernel_b"):
            value = arrays.get(f"{name}/{part}")
            variable = getattr(layer, part)
            if value is None or tuple(value.shape) != tuple(variable.shape):
                raise UsageError(f"{argument}: {path!r} has no {name}/{part} of shape "
                                 f"{tuple(variable.shape)}", argument=argument)
            variable.assign(value)
    return info


def _config_summary(model):
    config = model.get_config()
    summary = {k: config[k] for k in ("vocabulary_size", "sequence_length", "num_layers",
                                      "num_heads", "hidden_dim") if k in config}
    if getattr(model, "architecture", None) in HUB_TARGETS:
        summary["architecture"] = model.architecture
    return summary


def merged_weights_digest(model):
    """`weights_digest` of `model` as saved: LoRA's updates merged into the kernels.

    Equal to the digest of the `.keras` file's model once loaded, without
    loading it (Keras merges with the same float32 operations).
    """
    merged = {}
    if supports_lora(model):
        for layer in target_layers(model).values():
            if layer.lora_enabled:
                merged[f"{layer.path}/kernel"] = layer.kernel
    digest = hashlib.sha256()
    for weight in model.weights:
        if is_lora_weight(weight):
            continue
        value = np.asarray(merged.get(weight.path, weight))
        digest.update(f"{value.shape}:{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
