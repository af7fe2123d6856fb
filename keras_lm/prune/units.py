"""The prunable units of a model: attention heads, MLP neurons, LSTM units.

A unit is the set of weights that go when it is removed. Each family
describes its units as `UnitGroup`s: one per layer and kind, with, for every
weight the unit touches, the axis it lies along and the indices of each
unit on that axis. Scoring a unit, counting its parameters and cutting it
out of a weight are then the same few lines for every family.

For a Transformer block with `H` heads of width `D` (the fused `qkv` kernel
is laid out `(hidden, 3, H, D)` flattened) and an MLP of `I` neurons:

- head `h`: the `qkv` kernel's and bias's columns `p*H*D + h*D + d` (query,
  key and value, `p = 0, 1, 2`) and the `output` kernel's rows `h*D + d`;
- neuron `j`: `mlp_in`'s kernel column and bias `j`, `mlp_out`'s kernel row `j`.

For an LSTM layer of `U` units (Keras' gate order i, f, c, o):

- unit `j`: the columns `g*U + j` of its `kernel`, `recurrent_kernel` and
  `bias`, the row `j` of its `recurrent_kernel`, and the row `j` of what
  reads it (the next LSTM layer's kernel, or the output head's).

The output biases (`output`, `mlp_out`), embeddings and norms belong to no
unit: they are never pruned and not counted as prunable parameters.

Example:
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM(259, sequence_length=16, num_layers=1, num_heads=2, hidden_dim=8)
>>> [(g.kind, g.layer, g.count) for g in unit_groups(model)]
[('head', 0, 2), ('neuron', 0, 32)]
>>> [int(n) for n in unit_groups(model)[0].parameters_per_unit()]  # 3*4*8 + 12 + 4*8
[140, 140]
"""

import dataclasses

import numpy as np

# The least a layer keeps of each kind: a block with no head (or an MLP with
# no neuron) would be a different architecture, not a smaller one.
MIN_UNITS = 1


@dataclasses.dataclass
class WeightSlice:
    """Where a group's units lie in one weight: `indices[u]` along `axis` for unit `u`."""

    variable: object
    axis: int
    indices: np.ndarray  # (units, indices per unit)

    def per_unit(self, array):
        """`array` (shaped like the weight) summed over each unit's entries: `(units,)`."""
        moved = np.moveaxis(np.asarray(array), self.axis, 0)[self.indices]
        return moved.reshape(len(self.indices), -1).sum(axis=1)

    def parameters_per_unit(self):
        shape = list(self.variable.shape)
        return self.indices.shape[1] * int(np.prod(shape)) // shape[self.axis]


@dataclasses.dataclass
class UnitGroup:
    """The units of one kind in one layer (`kind`: head, neuron or lstm_unit)."""

    kind: str
    layer: int
    count: int
    slices: list

    def parameters_per_unit(self):
        """Weights removed with each unit `(units,)` (at the model's current sizes)."""
        return np.full(self.count, sum(s.parameters_per_unit() for s in self.slices))

    def scores(self, per_weight):
        """Each unit's score `(units,)`: `per_weight[path]` summed over its entries."""
        return sum(s.per_unit(per_weight[s.variable.path]) for s in self.slices)


def unit_groups(model):
    """The `UnitGroup`s of a `TransformerLM` or `LSTMLM`, layer by layer."""
    if hasattr(model, "blocks"):
        return [group for i, block in enumerate(model.blocks)
                for group in _transformer_block(i, block)]
    if hasattr(model, "lstm_layers"):
        readers = [lstm.cell.kernel for lstm in model.lstm_layers[1:]] + [model.head.kernel]
        return [_lstm_layer(i, lstm, reader)
                for i, (lstm, reader) in enumerate(zip(model.lstm_layers, readers))]
    raise ValueError(f"model must be a TransformerLM or an LSTMLM, got {type(model).__name__}")


def _transformer_block(i, block):
    attention = block.attention
    heads, width = attention.num_heads, attention.head_dim
    head = np.arange(heads)[:, None] * width + np.arange(width)  # (heads, head_dim)
    qkv = np.concatenate([p * heads * width + head for p in range(3)], axis=1)
    groups = [
        UnitGroup("head", i, heads, [
            WeightSlice(attention.qkv.kernel, 1, qkv),
            WeightSlice(attention.qkv.bias, 0, qkv),
            WeightSlice(attention.output_dense.kernel, 0, head),
        ]),
    ]
    if block.mlp_in is None:  # an attention-only block
        return groups
    neurons = np.arange(block.mlp_in.kernel.shape[1])[:, None]
    return groups + [
        UnitGroup("neuron", i, len(neurons), [
            WeightSlice(block.mlp_in.kernel, 1, neurons),
            WeightSlice(block.mlp_in.bias, 0, neurons),
            WeightSlice(block.mlp_out.kernel, 0, neurons),
        ]),
    ]


def _lstm_layer(i, lstm, reader):
    cell = lstm.cell
    units = cell.units
    own = np.arange(units)[:, None]
    gates = np.arange(4)[None, :] * units + own  # (units, 4): columns i, f, c, o
    return UnitGroup("lstm_unit", i, units, [
        WeightSlice(cell.kernel, 1, gates),
        WeightSlice(cell.recurrent_kernel, 1, gates),
        WeightSlice(cell.recurrent_kernel, 0, own),
        WeightSlice(cell.bias, 0, gates),
        WeightSlice(reader, 0, own),
    ])
