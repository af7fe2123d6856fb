"""Where a Transformer's heads look on MQAR: the circuit that matches keys, head by head.

A 2-layer attention model solves multi-query associative recall with two
heads (Olsson et al.'s induction circuit, Zoology's analysis): in layer 1 a
*previous-token* head copies each key into the position of its value; in
layer 2, at a query, a *matching* head attends to the value whose copied key
equals the query and reads it. `mqar_attention` measures both on a batch of
`Task("mqar")`, and where else the queries look:

- `previous_token`: (layers, heads) mean attention from each value position
  (1, 3, .. 2N-1) to its key (one position back);
- `to_value` / `to_key`: (layers, heads) mean attention from each query to the
  value (key) of the pair it asks for: the matching head reads `to_value`;
- `to_pairs`: (layers, heads) attention from the queries to the whole pair
  region (positions < 2N); what is left went to fillers and other queries.

A model stuck at 1/N exact match (picking a value, not the matching one)
shows `to_pairs` high and `to_value` near its share 1/(2N); one that
matches keys shows a layer-1 head with `previous_token` near 1 and a later
head with `to_value` near 1.

Example:
>>> import numpy as np
>>> from keras_lm.data.synthetic import Task
>>> from keras_lm.models import TransformerLM
>>> task = Task("mqar", sequence_length=32, vocabulary_size=64, mqar_num_pairs=4)
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=68, sequence_length=32)
>>> scores = mqar_attention(model, task.sample(np.random.default_rng(0), 4), num_pairs=4)
>>> np.asarray(scores["to_value"]).shape, sorted(scores)[:2]
((2, 2), ['best', 'previous_token'])
"""

import numpy as np


def mqar_attention(model, batch, num_pairs):
    """Attention shares of the MQAR circuit per layer and head (see the module doc).

    `batch`: a dict with `inputs` and `answer_group` (a `Task("mqar").sample`
    batch); `num_pairs`: its N. Needs `call(..., return_attention=True)`.
    Also returns `best`: the best layer-1 `previous_token` head's score, and
    the best `to_value`, `to_key` and `to_pairs` of the last layer.
    """
    inputs = np.asarray(batch["inputs"])
    _, weights = model(inputs.astype("int32"), training=False, return_attention=True)
    weights = [np.asarray(w, dtype="float64") for w in weights]  # (batch, heads, q, k) each
    rows, queries = np.nonzero(np.asarray(batch["answer_group"]) > 0)
    keys = inputs[:, 0:2 * num_pairs:2]  # (batch, N)
    # The pair each query asks for: where its key sits among the row's keys.
    pair = np.argmax(keys[rows] == inputs[rows, queries][:, None], axis=1)
    values = np.arange(1, 2 * num_pairs, 2)
    scores = {"previous_token": [], "to_value": [], "to_key": [], "to_pairs": []}
    for w in weights:
        scores["previous_token"].append(w[:, :, values, values - 1].mean(axis=(0, 2)))
        at_queries = w[rows, :, queries, :]  # (answers, heads, keys)
        scores["to_value"].append(at_queries[np.arange(len(rows)), :, 2 * pair + 1].mean(axis=0))
        scores["to_key"].append(at_queries[np.arange(len(rows)), :, 2 * pair].mean(axis=0))
        scores["to_pairs"].append(at_queries[:, :, :2 * num_pairs].sum(axis=2).mean(axis=0))
    best = {"previous_token_layer_1": float(scores["previous_token"][0].max()),
            **{f"{name}_last_layer": float(scores[name][-1].max())
               for name in ("to_value", "to_key", "to_pairs")}}
    return {**{name: [row.tolist() for row in rows_] for name, rows_ in scores.items()},
            "best": best}


__all__ = ["mqar_attention"]
