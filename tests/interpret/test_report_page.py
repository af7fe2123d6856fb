"""The page `keras-lm explain` writes, in a real browser: Debian's Chromium, headless, via selenium.

Run with `python -m pytest -m browser` (needs `apt-get install chromium chromium-driver`);
left out of the default run. A missing browser fails the test rather than skipping it.
"""

import numpy as np
import pytest

from keras_lm.interpret import Explanation, write_report
from keras_lm.interpret.report import token_colour

pytestmark = pytest.mark.browser


def _page(browser, explanation, directory):
    paths = write_report(explanation, str(directory))
    browser.get("file://" + paths["html"])
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#text .token')).map(s => "
        "[s.textContent, getComputedStyle(s).backgroundColor, s.dataset.score])")


def test_the_page_shows_the_tokens_coloured_by_score(browser, tmp_path):
    tokens = ["def", " f", "(", "x", "):", "\n", "<b>"]
    scores = np.array([0.8, -0.4, 0.0, 2.0, -2.0, 0.1, 0.5])
    explanation = Explanation(tokens=tokens, token_ids=list(range(7)), scores=scores,
                              method="integrated_gradients", target=" return",
                              target_tokens=[" return"], target_logp=-1.25,
                              agreement={"integrated_gradients vs occlusion": 0.5})
    spans = _page(browser, explanation, tmp_path)
    # The text reads as the prompt (a newline token shows a mark, then breaks).
    assert [text for text, _, _ in spans] == ["def", " f", "(", "x", "):", "\u21b5\n", "<b>"]
    colours = [colour for _, colour, _ in spans]
    assert colours == [token_colour(s, 2.0) for s in scores]
    assert colours[3] == "rgb(220, 38, 38)" and colours[4] == "rgb(37, 99, 235)"  # the strongest
    assert colours[2] == "rgb(255, 255, 255)"  # nothing
    assert [float(score) for _, _, score in spans] == pytest.approx(scores)
    target = browser.find_element("css selector", "#text .target").text
    assert target == " return"  # white-space: pre-wrap keeps the space
    title = browser.find_element("id", "title").text
    assert "' return'" in title and "-1.250" in title and "integrated gradients" in title
    assert "0.500" in browser.find_element("tag name", "table").text
    rows = browser.find_elements("css selector", "#scores tr")
    assert [row.text.split()[-1] for row in rows] == [f"{s:+.4f}" for s in scores]


def test_a_real_explanation_in_the_page(browser, tmp_path):
    import keras

    from keras_lm.interpret import explain
    from keras_lm.models import LSTMLM
    from keras_lm.tokenizers import ByteTokenizer

    keras.utils.set_random_seed(0)
    model = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=32)
    result = explain(model, "café au lait", target="!", tokenizer=ByteTokenizer(),
                     method="occlusion")
    spans = _page(browser, result, tmp_path)
    # Byte tokens: "é" is two tokens, each shown as its escaped byte.
    assert [text for text, _, _ in spans] == list("caf") + ["\\xc3", "\\xa9"] + list(" au lait")
    largest = float(np.abs(result.scores).max())
    assert [colour for _, colour, _ in spans] == [token_colour(s, largest) for s in result.scores]
