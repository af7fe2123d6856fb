"""Pictures as PNG bytes: attention maps, loss by position, attributions, token labels.

Drawn with matplotlib's object API and its Agg canvas (no pyplot: no global
figure state, no display needed), returned as PNG bytes that
`tf.summary.image` takes after `tf.image.decode_png` and that probes write
to disk. The lowest layer of keras_lm (it imports no other part of it), so
training's TensorBoard views and the probes draw with the same code.

Example:
>>> png = position_loss_figure([3.0, 2.5, 2.0], "loss by position")
>>> png[:4]
b'\\x89PNG'
"""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Space and control characters become visible marks, so a token on an axis
# or in the projector's metadata is never blank and never breaks a TSV row.
_VISIBLE = {" ": "\u2423", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def readable_token(piece):
    """A printable label for the bytes of one token.

    Example:
    >>> [readable_token(p) for p in (b"a", b" ", b"\\n", b"\\xc3\\xa9", b"\\xff")]
    ['a', '␣', '\\\\n', 'é', '\\\\xff']
    """
    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError:  # a lone byte of a multi-byte character
        return "".join(f"\\x{b:02x}" for b in piece)
    return "".join(
        _VISIBLE.get(ch) or (ch if ch.isprintable() else ch.encode("unicode_escape").decode())
        for ch in text
    )


def token_labels(tokenizer):
    """A readable label for every id of `tokenizer` (special ids by name).

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> labels = token_labels(ByteTokenizer())
    >>> labels[ord("A")], labels[ord(" ")], labels[ord("\\t")], labels[256:]
    ('A', '␣', '\\\\t', ['<pad>', '<bos>', '<eos>'])
    """
    ids = np.arange(tokenizer.vocabulary_size, dtype="int32")[:, None]
    pieces = tokenizer.decode(ids).numpy()  # one string per id; specials decode to b""
    names = {i: name for name, i in tokenizer.special_ids.items()}
    return [names.get(i) or readable_token(piece) for i, piece in enumerate(pieces)]


def attention_figure(weights, labels, title):
    """PNG of one layer's attention: one heatmap per head, tokens on the axes.

    The heads are stacked in one column, each ~360 pixels wide: TensorBoard
    shows an image at its card's width (~360 px) unless asked for its
    actual size, so a panel that wide keeps its token labels readable there.

    Args:
        weights: `(heads, queries, keys)` attention probabilities.
        labels: one string per position (the probe's tokens).
        title: shown above the panels (e.g. "layer 0, step 200").
    """
    heads, time = weights.shape[0], weights.shape[-1]
    font = 8 if time <= 28 else 6 if time <= 40 else 4
    upright = max(len(label) for label in labels) <= 2  # single characters fit unrotated
    figure = Figure(figsize=(3.6, 3.6 * heads + 0.3), dpi=100, layout="constrained")
    figure.suptitle(title, fontsize=10)
    for head in range(heads):
        axes = figure.add_subplot(heads, 1, head + 1)
        # Rows are queries (the token reading), columns keys (the token read).
        axes.imshow(weights[head], cmap="viridis", vmin=0.0, vmax=1.0,
                    interpolation="nearest")
        axes.set_title(f"head {head}", fontsize=9, pad=2)
        axes.set_xticks(range(time), labels, rotation=0 if upright else 90, fontsize=font,
                        fontfamily="monospace")
        axes.set_yticks(range(time), labels, fontsize=font, fontfamily="monospace")
        axes.tick_params(length=0, pad=1)
    return png_bytes(figure)


def position_loss_figure(losses, title):
    """PNG of the mean loss (nats) at each position of the context window.

    A falling curve is the model using its context: the further it has read,
    the better it predicts (in-context learning). The x axis is logarithmic,
    as the gain comes mostly in the first tokens.
    """
    losses = np.asarray(losses, dtype="float64")
    positions = np.arange(1, len(losses) + 1)
    figure = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(positions, losses, linewidth=1.5)
    axes.set_xscale("log")
    axes.set_xlabel("position in the context window (tokens read + 1)")
    axes.set_ylabel("validation loss (nats per token)")
    axes.set_title(title, fontsize=11)
    axes.grid(True, which="both", alpha=0.3)
    return png_bytes(figure)


def attribution_figure(labels, scores, title):
    """PNG of per-token attributions: one horizontal bar per token, in reading order.

    Bars right (red) raised the explained log-probability, bars left (blue)
    lowered it; tokens read top to bottom. See `keras_lm.interpret`.

    Example:
    >>> attribution_figure(["a", "b"], [0.5, -0.2], "scores")[:4]
    b'\\x89PNG'
    """
    scores = np.asarray(scores, dtype="float64")
    figure = Figure(figsize=(6.4, 1.2 + 0.22 * len(scores)), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(scores))
    axes.barh(positions, scores, color=np.where(scores >= 0, "#dc2626", "#2563eb"))
    axes.set_yticks(positions, labels, fontsize=8, fontfamily="monospace")
    axes.invert_yaxis()  # the first token on top, as it is read
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("attribution (nats of the target's log-probability)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, axis="x", alpha=0.3)
    return png_bytes(figure)


def png_bytes(figure):
    """The PNG encoding of a matplotlib `Figure` (drawn on an Agg canvas).

    Example:
    >>> from matplotlib.figure import Figure
    >>> figure = Figure(figsize=(1, 1), dpi=10)
    >>> png_bytes(figure)[:4]
    b'\\x89PNG'
    """
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


__all__ = ["attention_figure", "attribution_figure", "png_bytes", "position_loss_figure", "readable_token",
           "token_labels"]
