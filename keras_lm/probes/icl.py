"""In-context learning probes: loss by position, the ICL score, induction.

Each probe takes a model (and data) and returns a dict of plain numbers and
lists, ready for JSON; `keras-lm probe` writes it with a plot and TensorBoard
summaries.

Example:
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=40, sequence_length=32)
>>> result = induction(model, special_ids=[], batches=1, batch_size=4)
>>> sorted(k for k in result if k.startswith("loss_"))
['loss_first', 'loss_repeat']
>>> icl_positions(512), icl_positions(64)
((50, 500), (6, 62))
"""

import numpy as np

from keras_lm.scoring import position_losses, position_sums


def icl_positions(sequence_length):
    """The early and late position of the ICL score, scaled from Olsson et al.

    Olsson et al. (2022) take the loss of the 500th token minus that of the
    50th in a 512-token context; we keep the ratios: the tokens at
    `round(L * 50 / 512)` and `round(L * 500 / 512)` (1-based, at least 1).
    """
    early = max(1, round(sequence_length * 50 / 512))
    late = max(early + 1, round(sequence_length * 500 / 512))
    return early, late


def per_position_loss(model, batches):
    """Mean loss (nats) at every position of the context window.

    `batches`: a finite dataset of `(inputs, targets)`; position p (1-based)
    is the loss of predicting token p + 1 after reading p tokens. Targets
    equal to the model's `pad_id` are left out.
    """
    losses = position_losses(model, batches, pad_id=getattr(model, "pad_id", None))
    return {"positions": list(range(1, len(losses) + 1)), "losses": losses.tolist()}


def icl_score(model, batches):
    """Olsson et al.'s in-context learning score: loss late minus loss early.

    More negative means the model predicts better the more it has read.
    """
    result = per_position_loss(model, batches)
    losses = result["losses"]
    early, late = icl_positions(len(losses))
    return {
        "icl_score": losses[late - 1] - losses[early - 1],
        "early_position": early,
        "late_position": late,
        "loss_early": losses[early - 1],
        "loss_late": losses[late - 1],
        **result,
    }


def repeated_random_tokens(vocabulary_size, special_ids, sequence_length, batch_size, seed):
    """`(batch, sequence_length + 1)` ids: a random block of length (L+1)//2, twice.

    Ids are drawn uniformly from the vocabulary without the special ids.
    """
    rng = np.random.default_rng(seed)
    ordinary = np.setdiff1d(np.arange(vocabulary_size), list(special_ids))
    block = (sequence_length + 1) // 2
    tokens = rng.choice(ordinary, size=(batch_size, block))
    return np.concatenate([tokens, tokens, tokens], axis=1)[:, :sequence_length + 1], block


def induction(model, special_ids, batches=8, batch_size=32, seed=0):
    """Loss and next-token accuracy on a repeat of random tokens versus its first copy.

    A model that copies from context (an induction head) predicts the
    second copy; the first is unpredictable (loss ~ ln of the vocabulary).
    """
    L = model.sequence_length
    pairs = []
    for i in range(batches):
        tokens, block = repeated_random_tokens(model.vocabulary_size, special_ids, L, batch_size,
                                               [seed, i])
        pairs.append((tokens[:, :-1].astype("int32"), tokens[:, 1:].astype("int32")))
    # No pad_id: the ids are random ordinary tokens, every position counts.
    loss_sums, hit_sums, counts = position_sums(model, pairs)
    losses, accuracy = loss_sums / counts, hit_sums / counts
    first = slice(0, block - 1)  # targets 1 .. block-1: inside the first copy
    repeat = slice(block - 1, L)  # targets block .. L: the repeat
    return {
        "block_length": block,
        "loss_first": float(losses[first].mean()),
        "loss_repeat": float(losses[repeat].mean()),
        "accuracy_first": float(accuracy[first].mean()),
        "accuracy_repeat": float(accuracy[repeat].mean()),
        "positions": list(range(1, L + 1)),
        "losses": losses.tolist(),
        "accuracy": accuracy.tolist(),
    }


PRESENT = 0.5  # a head scoring above this is called present (an induction / previous-token head)


def repeated_segments(vocabulary_size, special_ids, sequence_length, batch_size, seed):
    """`(batch, sequence_length)` ids and `(batch,)` periods: a random block repeated.

    Each row draws its own block length in `[L/4, L/2]`, so the distance from
    a token to the one after its earlier occurrence differs between rows: a
    head that attends a fixed distance back cannot score as a prefix-matching
    head on all of them, only one that finds the earlier occurrence.
    """
    rng = np.random.default_rng(seed)
    ordinary = np.setdiff1d(np.arange(vocabulary_size), list(special_ids))
    low, high = max(2, sequence_length // 4), max(2, sequence_length // 2)
    periods = rng.integers(low, high + 1, size=batch_size)
    blocks = rng.choice(ordinary, size=(batch_size, high))
    positions = np.arange(sequence_length)[None, :]
    return np.take_along_axis(blocks, positions % periods[:, None], axis=1), periods


def induction_heads(model, special_ids, batch_size=16, seed=0, threshold=PRESENT):
    """Olsson et al.'s head scores, per layer and head, on random blocks repeated.

    On `repeated_segments` (a block of length b, per row, repeated), per head:
    - `prefix_matching`: mean attention from a token at position t of a
      repeat (t >= b) to position t - b + 1, the token after the earlier
      occurrence of the current token: what an induction head reads. The
      block length varies by row, so a fixed-offset head scores low;
    - `previous_token`: mean attention from position t (t >= 1, every
      position) to t - 1, what the first-layer head of an induction circuit
      reads;
    - `copying` (models with weights, else None): Olsson et al.'s copying
      score of the head's OV circuit W_E W_V W_O W_U (layer norms left out),
      sum of its eigenvalues over the sum of their magnitudes, in [-1, 1]:
      near 1 when the head raises the logit of the token it attends to.
    Attention scores are shares (0..1); a head is *present* above `threshold`
    (0.5: most of its attention goes there). `uniform_baseline` is the mean
    score of a head that attends uniformly to the past.
    `best_prefix_matching` is the best head of any layer (a 1-layer model is
    scored by the same rule, so "no induction head in 1 layer" is a
    measurement, not a definition); `best_prefix_matching_head` says where.
    `best_previous_token` is the best head of the first layer.
    Needs a Transformer (`call(..., return_attention=True)`).

    Example:
    >>> from keras_lm.models import TransformerLM
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=40, sequence_length=32)
    >>> scores = induction_heads(model, special_ids=[], batch_size=2)
    >>> len(scores["prefix_matching"]), len(scores["copying"][0]), scores["induction_heads"]
    (2, 2, [])
    """
    L = model.sequence_length
    tokens, periods = repeated_segments(model.vocabulary_size, special_ids, L, batch_size, seed)
    _, weights = model(tokens.astype("int32"), training=False, return_attention=True)
    rows, queries = np.nonzero(np.arange(L)[None, :] >= periods[:, None])  # inside a repeat
    everyone = np.arange(1, L)
    # Layer by layer: a pruned model's layers differ in head count.
    prefix, previous = [], []
    for layer_weights in weights:
        w = np.asarray(layer_weights, dtype="float64")  # (batch, heads, queries, keys)
        prefix.append(w[rows, :, queries, queries - periods[rows] + 1].mean(axis=0))
        previous.append(w[:, :, everyone, everyone - 1].mean(axis=(0, 2)))
    layer, head = max(((i, h) for i in range(len(prefix)) for h in range(len(prefix[i]))),
                      key=lambda place: prefix[place[0]][place[1]])
    copying = copying_scores(model, special_ids)
    return {
        "threshold": threshold,
        "prefix_matching": [row.tolist() for row in prefix],  # (layers, heads)
        "previous_token": [row.tolist() for row in previous],
        "copying": copying,
        "best_prefix_matching": float(prefix[layer][head]),
        "best_prefix_matching_head": [layer + 1, head + 1],  # 1-based layer, head
        "best_previous_token": float(previous[0].max()),
        "best_previous_token_head": [1, int(np.argmax(previous[0])) + 1],
        # (layer, head), 1-based, of every head above the threshold
        "induction_heads": _heads_above(prefix, threshold),
        "previous_token_heads": _heads_above(previous, threshold),
        "uniform_baseline": float(np.mean(1.0 / (queries + 1))),
    }


def copying_scores(model, special_ids=()):
    """`(layers, heads)` copying scores of a `TransformerLM`'s heads; None for other models.

    The OV circuit of head h maps a token attended to onto logits:
    `W_E W_V^h W_O^h W_U` (V x V over the ordinary ids). Its nonzero
    eigenvalues are those of the small `W_O^h W_U W_E W_V^h` (head_dim x
    head_dim); the score is sum(eigenvalues) / sum(|eigenvalues|) (Olsson et
    al. 2022): positive when the head copies what it reads. Layer norms and
    the residual path through other layers are left out, as in the paper.
    """
    blocks = getattr(model, "blocks", None)
    if not blocks or not hasattr(model, "token_embedding"):
        return None
    ordinary = np.setdiff1d(np.arange(model.vocabulary_size), list(special_ids))
    embed = np.asarray(model.token_embedding.embeddings, dtype="float64")[ordinary]  # (V, d)
    unembed = (embed.T if model.head is None
               else np.asarray(model.head.kernel, dtype="float64")[:, ordinary])  # (d, V)
    circuit = unembed @ embed  # (d, d): W_U W_E
    scores = []
    for block in blocks:
        attention = block.attention
        heads, head_dim = attention.num_heads, attention.head_dim
        qkv = np.asarray(attention.qkv.kernel, dtype="float64")
        values = qkv.reshape(qkv.shape[0], 3, heads, head_dim)[:, 2]  # (d, heads, head_dim)
        out = np.asarray(attention.output_dense.kernel, dtype="float64")
        out = out.reshape(heads, head_dim, -1)  # (heads, head_dim, d)
        row = []
        for h in range(heads):
            eigenvalues = np.linalg.eigvals(out[h] @ circuit @ values[:, h])
            total = np.abs(eigenvalues).sum()
            row.append(float(eigenvalues.real.sum() / total) if total > 0 else 0.0)
        scores.append(row)
    return scores


def _heads_above(scores, threshold):
    """`[layer, head]` (1-based) of every head whose score is above `threshold`."""
    return [[layer + 1, int(head) + 1] for layer, row in enumerate(scores)
            for head in np.nonzero(row > threshold)[0]]
