"""The result of `explain`: the prompt's tokens, one score each, and what was explained."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class Explanation:
    """Per-token attributions of one target (or label) to one prompt.

    Attributes:
        tokens: the prompt's tokens as text (their decoded pieces), in order.
        token_ids: their ids.
        scores: one float per token: how much it raises the target's
            log-probability (positive) or lowers it (negative), in nats.
        method: `integrated_gradients`, `gradient_x_input`, `occlusion`, `shap` or `lime`.
        target: the explained continuation's text, or the classifier's label.
        target_tokens: the target's tokens as text (a label: the label).
        target_ids: the target's token ids (a label: its index).
        target_logp: the log-probability of the target given the prompt
            (summed over its tokens), or of the label.
        kind: `continuation` (a language model) or `label` (a classifier).
        details: the method's extras: integrated gradients'
            `steps`, `baseline_logp` and `completeness_gap` (sum of scores
            minus logp(input) - logp(baseline)); occlusion's `span`; SHAP's
            and LIME's `seed` and `samples` (SHAP: `permutations` and
            `empty_logp`, the log-probability with every prompt token
            removed; LIME: `kernel_width` and `r2`, its linear fit's R²).
        agreement: Spearman's rank correlation between the scores of each
            pair of methods (`"a vs b"`), when `explain(compare=True)`;
            None where undefined.
        all_scores: every computed method's scores (the compared ones too),
            in `METHODS` order.
    """

    tokens: list
    token_ids: list
    scores: np.ndarray
    method: str
    target: str
    target_tokens: list
    target_logp: float
    target_ids: list = dataclasses.field(default_factory=list)
    kind: str = "continuation"
    details: dict = dataclasses.field(default_factory=dict)
    agreement: dict = dataclasses.field(default_factory=dict)
    all_scores: dict = dataclasses.field(default_factory=dict)

    def top(self, k=5):
        """The `k` tokens with the largest scores, as `(token, score)` pairs, largest first."""
        order = np.argsort(-np.asarray(self.scores), kind="stable")[:k]
        return [(self.tokens[i], float(self.scores[i])) for i in order]

    def to_json(self):
        """A JSON-ready dict (what `keras-lm explain --json` prints)."""
        return {
            "kind": self.kind,
            "method": self.method,
            "target": self.target,
            "target_tokens": list(self.target_tokens),
            "target_ids": [int(i) for i in self.target_ids],
            "target_logp": float(self.target_logp),
            "tokens": [{"token": t, "id": int(i), "score": float(s)}
                       for t, i, s in zip(self.tokens, self.token_ids, self.scores)],
            "details": dict(self.details),
            "agreement": dict(self.agreement),
            "all_scores": {name: [float(s) for s in scores]
                           for name, scores in self.all_scores.items()},
        }
