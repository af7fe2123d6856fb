"""An explanation on disk: an HTML page, a PNG, a JSON file and TensorBoard summaries.

`write_report(explanation, output_dir)` writes

- `explanation.html`: the prompt as it reads, each token's background
  coloured by its score (red raised the target's log-probability, blue
  lowered it, white: nothing; the strongest token of either sign is the
  full colour), the target after it, the scores on hover; one
  self-contained file (no script, no network); with several methods
  (`explain(compare=...)`) the prompt once more per method, each coloured
  by its own scores, and their scores side by side;
- `explanation.png`: the scores as bars (`keras_lm.figures.attribution_figure`);
- `explanation.json`: `Explanation.to_json()`;
- TensorBoard summaries in `output_dir/logs`: text `explanation/tokens`
  (a table of tokens and scores, one column per method) and image
  `explanation/attributions`.

Each run replaces the three files; the TensorBoard events accumulate, one
step per explanation written there.

Example:
>>> import tempfile
>>> from keras_lm.interpret import Explanation
>>> result = Explanation(tokens=["a", "b"], token_ids=[97, 98], scores=[0.4, -0.1],
...                      method="occlusion", target="c", target_tokens=["c"],
...                      target_logp=-1.5)
>>> sorted(write_report(result, tempfile.mkdtemp()))
['html', 'json', 'logs', 'png']
"""

import html
import os

import numpy as np

from keras_lm.figures import attribution_figure, readable_token
from keras_lm.io_utils import write_bytes, write_json

HTML_FILE, PNG_FILE, JSON_FILE, LOGS = "explanation.html", "explanation.png", "explanation.json", "logs"
POSITIVE, NEGATIVE = (220, 38, 38), (37, 99, 235)  # red, blue (the PNG's colours too)


def token_colour(score, largest):
    """The `rgb(r, g, b)` background of a token: white mixed with red or blue by |score| / largest.

    Example:
    >>> token_colour(2.0, 2.0), token_colour(-1.0, 2.0), token_colour(0.0, 0.0)
    ('rgb(220, 38, 38)', 'rgb(146, 177, 245)', 'rgb(255, 255, 255)')
    """
    weight = 0.0 if largest <= 0 else min(abs(float(score)) / largest, 1.0)
    colour = POSITIVE if score >= 0 else NEGATIVE
    r, g, b = (round(255 + (c - 255) * weight) for c in colour)
    return f"rgb({r}, {g}, {b})"


def title(explanation):
    """One line: what was explained, by which method."""
    what = (f"label {explanation.target!r}" if explanation.kind == "label"
            else f"target {explanation.target!r}")
    return (f"{what} (log-probability {explanation.target_logp:.3f}), "
            f"{explanation.method.replace('_', ' ')}")


def coloured_tokens(tokens, scores):
    """The tokens as `<span class="token">`s, each coloured by its score (HTML)."""
    scores = np.asarray(scores, dtype="float64")
    largest = float(np.abs(scores).max()) if len(scores) else 0.0
    return "".join(
        f'<span class="token" data-index="{i}" data-score="{score:.6g}" '
        f'style="background-color: {token_colour(score, largest)}" '
        f'title="{html.escape(readable_token(text.encode()))}: {score:+.4f}">'
        f"{_visible(text)}</span>"
        for i, (text, score) in enumerate(zip(tokens, scores)))


def side_by_side(explanation):
    """With several methods: the prompt coloured by each one's scores, and a table of all
    the scores (HTML; empty for one method)."""
    if len(explanation.all_scores) < 2:
        return ""
    names = list(explanation.all_scores)
    texts = "".join(f'<tr><th>{name.replace("_", " ")}</th><td class="method-text" '
                    f'data-method="{name}">{coloured_tokens(explanation.tokens, scores)}</td></tr>'
                    for name, scores in explanation.all_scores.items())
    head = "".join(f"<th>{name.replace('_', ' ')}</th>" for name in names)
    rows = "".join(
        f"<tr><td><code>{html.escape(readable_token(t.encode()))}</code></td>"
        + "".join(f"<td>{explanation.all_scores[name][i]:+.4f}</td>" for name in names)
        + "</tr>" for i, t in enumerate(explanation.tokens))
    return (f'<h2>Methods side by side</h2><p>Each row is coloured by its own strongest '
            f'token.</p><table id="methods">{texts}</table>'
            f'<table id="method-scores"><tr><th>token</th>{head}</tr>{rows}</table>')


def html_page(explanation):
    """The self-contained HTML page of an explanation (a string)."""
    scores = np.asarray(explanation.scores, dtype="float64")
    spans = coloured_tokens(explanation.tokens, scores)
    target = f'<span class="target">{_visible("".join(explanation.target_tokens))}</span>'
    scored = "".join(f"<tr><td><code>{html.escape(readable_token(t.encode()))}</code></td>"
                     f"<td>{s:+.4f}</td></tr>" for t, s in zip(explanation.tokens, scores))
    rows = "".join(f"<tr><td>{html.escape(pair)}</td><td>{'n/a' if rho is None else f'{rho:.3f}'}"
                   "</td></tr>" for pair, rho in explanation.agreement.items())
    agreement = (f"<h2>Rank agreement (Spearman)</h2><table>{rows}</table>" if rows else "")
    details = ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in explanation.details.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>keras-lm explain: {html.escape(explanation.target)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 60em; }}
#text {{ font-family: monospace; font-size: 1.2em; white-space: pre-wrap; line-height: 2;
        border: 1px solid #ccc; padding: 0.6em; }}
.token {{ padding: 0.1em 0; }}
.method-text {{ font-family: monospace; white-space: pre-wrap; }}
.target {{ outline: 2px solid #444; background-color: rgb(240, 240, 240); }}
.legend span {{ padding: 0.2em 0.6em; }}
td {{ padding: 0.2em 1em; }}
</style></head>
<body>
<h1 id="title">{html.escape(title(explanation))}</h1>
<p class="legend"><span style="background-color: {token_colour(1, 1)}">raised it</span>
<span style="background-color: {token_colour(-1, 1)}">lowered it</span>
<span class="target">explained</span> {html.escape(details)}</p>
<div id="text">{spans}{target if explanation.kind == "continuation" else ""}</div>
{agreement}
{side_by_side(explanation)}
<h2>Scores</h2>
<table id="scores">{scored}</table>
</body></html>
"""


def _visible(text):
    # A newline token shows a mark, then breaks the line (white-space: pre-wrap).
    return html.escape(text).replace("\n", "\u21b5\n")


def write_report(explanation, output_dir, step=None):
    """Writes the page, the PNG, the JSON and TensorBoard summaries; returns their paths.

    `step` is the TensorBoard step (default: the number of explanations
    already in `output_dir/logs`).
    """
    import tensorflow as tf

    os.makedirs(output_dir, exist_ok=True)
    labels = [readable_token(t.encode()) for t in explanation.tokens]
    png = attribution_figure(labels, explanation.scores, title(explanation))
    paths = {name: os.path.join(output_dir, file)
             for name, file in (("html", HTML_FILE), ("png", PNG_FILE), ("json", JSON_FILE),
                                ("logs", LOGS))}
    write_bytes(paths["html"], html_page(explanation).encode("utf-8"))
    write_bytes(paths["png"], png)
    write_json(paths["json"], explanation.to_json())
    if step is None:
        step = _written_steps(paths["logs"])
    writer = tf.summary.create_file_writer(paths["logs"])
    with writer.as_default():
        tf.summary.text("explanation/tokens", markdown_table(explanation), step=step)
        tf.summary.image("explanation/attributions", tf.image.decode_png(png)[tf.newaxis],
                         step=step)
    writer.close()
    return paths


def markdown_table(explanation):
    """The explanation as Markdown (TensorBoard's text dashboard renders it)."""
    columns = {explanation.method: explanation.scores}
    if len(explanation.all_scores) > 1:
        columns = explanation.all_scores
    lines = [f"**{title(explanation)}**", "",
             "| token | " + " | ".join(columns) + " |" if len(columns) > 1 else "| token | score |",
             "|---|" + "---:|" * len(columns)]
    lines += [f"| `{readable_token(t.encode())}` | "
              + " | ".join(f"{scores[i]:+.4f}" for scores in columns.values()) + " |"
              for i, t in enumerate(explanation.tokens)]
    if explanation.agreement:
        lines += ["", "rank agreement (Spearman): " + ", ".join(
            f"{pair} {'n/a' if rho is None else f'{rho:.3f}'}"
            for pair, rho in explanation.agreement.items())]
    return "\n".join(lines)


def _written_steps(logs):
    """How many explanations the event files in `logs` already hold (their image events)."""
    if not os.path.isdir(logs):
        return 0
    import tensorflow as tf

    count = 0
    for name in os.listdir(logs):
        if "tfevents" in name:
            for record in tf.data.TFRecordDataset(os.path.join(logs, name)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                count += sum(v.tag == "explanation/attributions" for v in event.summary.value)
    return count
