"""The one description of an exported model's step API: sizes, signatures, state.

`ExportSchema.of(model, prefill_lengths, layout)` reads the model once:
vocabulary size, sequence length, the prefill lengths (checked), and every
state tensor (name, shape without the batch, dtype) from
`model.initial_state(1, model.sequence_length)`, tensor by tensor, so layers
may differ in shape. Everything the export writes about the step API is
derived from it:

- `tensor_specs(signature, batch_size)`: the `tf.TensorSpec`s of a
  signature's inputs (batch `None` for the SavedModel, 1 for TFLite);
- `signature_entries()` and `state_entries()`: the `signatures` and `state`
  entries of the bundle's `metadata.json` and of the `.tflite` file's
  embedded metadata (`{name, shape, dtype}`, batch 1), which
  `keras_lm.export.litert_runner` checks a file's signatures against;
- `zero_state(batch_size)`: the zero state in NumPy, by exported name;
- `model_state(tensors)`: exported names back to the model's state keys.

Two layouts name the same step API:

- `"litert"` (every `.tflite` file, our bundle's and the `.litertlm`'s: the
  names LiteRT-LM's engine looks for, as litert-torch converts models):
  signatures `prefill_{N}` (`N` tokens at the positions `input_pos`) and
  `decode` (one token). Inputs `tokens` int32 `(1, N)` (`(1, 1)` for
  `decode`), `input_pos` int32 `(N,)` (`(1,)`), then the state sorted by
  name; outputs `logits` float32 `(1, N, V)` (`(1, 1, V)`), then the same
  state. A Transformer's cache is `kv_cache_k_{i}` / `kv_cache_v_{i}`
  (layer `i`, `(1, heads, sequence_length, head_dim)`); an LSTM keeps
  `layer_{i}_h` / `layer_{i}_c`.
- `"saved_model"` (the SavedModel's `prefill` and `decode`, batch open):
  inputs `token_ids` (`(batch, time)`; `(batch,)` for `decode`), for
  `decode` also `position` (a scalar), then the state under the model's own
  names (`layer_{i}_key`, `layer_{i}_value`, ...).

Only NumPy is imported at module level: TensorFlow is imported by the one
method that builds TensorSpecs.

Example:
>>> from keras_lm.models import LSTMLM
>>> model = LSTMLM.from_preset("tiny", vocabulary_size=259)
>>> schema = ExportSchema.of(model, prefill_lengths=(8,))
>>> schema.signature_names, schema.state_names
(('prefill_8', 'decode'), ('layer_0_c', 'layer_0_h'))
>>> [entry["shape"] for entry in schema.signature_entries()["decode"]["inputs"]][:2]
[[1, 1], [1]]
>>> litert_name("layer_3_value")
'kv_cache_v_3'
"""

import dataclasses
import operator
import re

import numpy as np

from keras_lm.errors import UsageError

_PREFILL = re.compile(r"^prefill(?:_(\d+))?$")
_CACHE = re.compile(r"^layer_(\d+)_(key|value)$")
LAYOUTS = ("litert", "saved_model")


def litert_name(key):
    """The LiteRT name of the model's state key `key` (`layer_{i}_key` -> `kv_cache_k_{i}`).

    LiteRT-LM's engine finds a model's cache by these names (its executor
    looks for `kv_cache_k_0` and binds every `kv_cache_k_*`/`kv_cache_v_*`
    input to the same-named output); other state (an LSTM's) keeps its name.
    """
    match = _CACHE.match(key)
    if not match:
        return key
    return f"kv_cache_{match.group(2)[0]}_{match.group(1)}"


@dataclasses.dataclass(frozen=True)
class StateTensor:
    """One state tensor: its exported name, shape without the batch, dtype name,
    `key`, its name in `model.initial_state`, and `transposed`: whether the
    exported tensor swaps the model's axes 1 and 2 (see `ExportSchema.of`)."""

    name: str
    shape: tuple
    dtype: str
    key: str = None
    transposed: bool = False


@dataclasses.dataclass(frozen=True)
class ExportSchema:
    """What an exported step API takes and returns (see the module docstring).

    Attributes:
        vocabulary_size: logits per position.
        sequence_length: positions a text may reach (the cache length).
        prefill_lengths: the `N` of each `prefill_{N}` signature, ascending.
        state: `StateTensor`s, sorted by exported name.
        layout: `"litert"` or `"saved_model"` (see the module docstring).
    """

    vocabulary_size: int
    sequence_length: int
    prefill_lengths: tuple
    state: tuple
    layout: str = "litert"

    @classmethod
    def of(cls, model, prefill_lengths=None, layout="litert"):
        """The schema of `model`'s step API; `prefill_lengths` is checked (None: no prefill_N)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        sequence_length = int(model.sequence_length)
        initial = model.initial_state(1, sequence_length)
        rename = litert_name if layout == "litert" else (lambda key: key)
        # LiteRT-LM's engine reads a cache's length from axis 2 of
        # `(1, heads, length, head_dim)`; a model that keeps its cache as
        # `(batch, length, heads, head_dim)` (`cache_time_axis` 1: an imported
        # keras-hub model) has it transposed in and out of the `.tflite` steps.
        transpose = layout == "litert" and getattr(model, "cache_time_axis", 2) == 1
        state = tuple(sorted(
            (_state_tensor(rename(key), key, initial[key],
                           transpose and bool(_CACHE.match(key)))
             for key in initial),
            key=lambda tensor: tensor.name,
        ))
        lengths = ()
        if prefill_lengths is not None:
            lengths = check_prefill_lengths(prefill_lengths, sequence_length)
        return cls(int(model.vocabulary_size), sequence_length, lengths, state, layout)

    @property
    def ids_names(self):
        """The names of the token and position inputs: `(tokens, positions)`."""
        return ("tokens", "input_pos") if self.layout == "litert" else ("token_ids", "position")

    @property
    def is_kv_cache(self):
        """Whether the state is a per-layer key/value cache (a Transformer's)."""
        return bool(self.state) and all(_CACHE.match(t.key or "") for t in self.state)

    def model_state(self, tensors):
        """`{model state key: tensor}` from `{exported name: tensor}`."""
        return {t.key: tensors[t.name] for t in self.state}

    def exported_state(self, tensors):
        """`{exported name: tensor}` from `{model state key: tensor}`."""
        return {t.name: tensors[t.key] for t in self.state}

    @property
    def state_names(self):
        return tuple(tensor.name for tensor in self.state)

    @property
    def signature_names(self):
        """`prefill_{N}` per prefill length, then `decode`."""
        return tuple(f"prefill_{n}" for n in self.prefill_lengths) + ("decode",)

    def inputs(self, signature, batch_size=1):
        """`[{name, shape, dtype}]` of `signature`'s inputs (`None`: any size)."""
        tokens, positions = self.ids_names
        if self.layout == "litert":
            length = 1 if signature == "decode" else _prefill_length(signature)
            ids = [_entry(tokens, [batch_size, length], "int32"),
                   _entry(positions, [length], "int32")]
        elif signature == "decode":
            ids = [_entry(tokens, [batch_size], "int32"), _entry(positions, [], "int32")]
        else:
            ids = [_entry(tokens, [batch_size, _prefill_length(signature)], "int32")]
        return ids + self.state_entries(batch_size)

    def outputs(self, signature, batch_size=1):
        """`[{name, shape, dtype}]` of `signature`'s outputs: `logits`, then the state."""
        if signature == "decode":
            logits = [batch_size, 1, self.vocabulary_size] if self.layout == "litert" else [
                batch_size, self.vocabulary_size]
        else:
            logits = [batch_size, _prefill_length(signature), self.vocabulary_size]
        return [_entry("logits", logits, "float32")] + self.state_entries(batch_size)

    def state_entries(self, batch_size=1):
        """`[{name, shape, dtype}]` of the state, sorted by name (metadata `state`)."""
        return [_entry(t.name, [batch_size, *t.shape], t.dtype) for t in self.state]

    def signature_entries(self):
        """`{signature: {"inputs": [...], "outputs": [...]}}` at batch 1 (metadata `signatures`)."""
        return {
            name: {"inputs": self.inputs(name), "outputs": self.outputs(name)}
            for name in self.signature_names
        }

    def zero_state(self, batch_size=1):
        """`{exported name: np.ndarray}` of zeros: the state before the first token."""
        return {t.name: np.zeros((batch_size, *t.shape), t.dtype) for t in self.state}

    def tensor_specs(self, signature, batch_size):
        """`{name: tf.TensorSpec}` of `signature`'s inputs, in input order.

        `signature` is `decode`, `prefill_{N}`, or `prefill` (any number of
        tokens); `batch_size` None leaves the batch open (SavedModel).
        """
        # Imported here, not at the top: the rest of the schema (the metadata
        # entries, the zero state) is plain NumPy.
        import tensorflow as tf

        return {
            entry["name"]: tf.TensorSpec(entry["shape"], entry["dtype"], name=entry["name"])
            for entry in self.inputs(signature, batch_size)
        }


def check_prefill_lengths(prefill_lengths, sequence_length):
    """`prefill_lengths` as a sorted tuple of distinct ints in `[1, sequence_length]`.

    Example:
    >>> check_prefill_lengths([32, 8, 8], 64)
    (8, 32)
    """
    try:
        lengths = sorted({operator.index(n) for n in prefill_lengths})
    except (TypeError, ValueError):
        raise UsageError(
            f"prefill_lengths must be a list of ints, got {prefill_lengths!r}",
            argument="prefill_lengths",
        ) from None
    if not lengths:
        raise UsageError(
            "prefill_lengths must name at least one length, got none", argument="prefill_lengths"
        )
    bad = [n for n in lengths if not 1 <= n <= sequence_length]
    if bad:
        raise UsageError(
            f"prefill_lengths must be in [1, sequence_length={sequence_length}], got {bad}",
            argument="prefill_lengths",
        )
    return tuple(lengths)


def _prefill_length(signature):
    """`N` of `prefill_{N}`; None for `prefill` (any length)."""
    match = _PREFILL.match(signature)
    if not match:
        raise ValueError(f"signature must be prefill, prefill_N or decode, got {signature!r}")
    return int(match.group(1)) if match.group(1) else None


def _state_tensor(name, key, tensor, transposed):
    shape = tuple(int(d) for d in tensor.shape[1:])
    if transposed:
        shape = (shape[1], shape[0], *shape[2:])
    return StateTensor(name, shape, _dtype_name(tensor.dtype), key, transposed)


def _entry(name, shape, dtype):
    return {"name": name, "shape": list(shape), "dtype": dtype}


def _dtype_name(dtype):
    """`"float32"` for a TensorFlow, NumPy or Keras dtype."""
    return getattr(dtype, "name", None) or str(dtype)
