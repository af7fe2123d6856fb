"""Token attributions: which input tokens a model's output depends on, and how much.

`explain(model, prompt, target=None, label=None, method=...)` scores each
token of a prompt for a language model's continuation (the log-probability
of the target text, default: the model's greedy next token) or a
classifier's label, by integrated gradients, gradient x input or occlusion
(`methods`) or by SHAP or LIME over token masks (`sampling`, the `explain`
extra), and compares the methods' rankings (Spearman). `write_report`
writes the HTML page, the PNG and the TensorBoard summaries.

Sits above `models` and `scoring` (it scores targets) and below `export`.

Example:
>>> from keras_lm.models import LSTMLM
>>> from keras_lm.tokenizers import ByteTokenizer
>>> model = LSTMLM.from_preset("tiny", vocabulary_size=259)
>>> result = explain(model, "abc", tokenizer=ByteTokenizer(), method="occlusion")
>>> len(result.scores), result.kind
(3, 'continuation')
"""

from keras_lm.interpret.explain import (
    CHEAP_METHODS,
    DEFAULT_METHOD,
    DEFAULT_STEPS,
    METHODS,
    explain,
)
from keras_lm.interpret.explanation import Explanation
from keras_lm.interpret.methods import spearman
from keras_lm.interpret.report import write_report

__all__ = ["CHEAP_METHODS", "DEFAULT_METHOD", "DEFAULT_STEPS", "METHODS", "Explanation", "explain",
           "spearman", "write_report"]
