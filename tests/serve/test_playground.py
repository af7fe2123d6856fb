"""The playground of `keras-lm serve` in a real browser: Debian's Chromium, headless, via selenium.

Run with `python -m pytest -m browser` (needs `apt-get install chromium chromium-driver`);
left out of the default run. A missing browser fails the test rather than skipping it:
`-m browser` runs only these, and a skipped run would pass with nothing checked.
"""

import httpx
import keras
import pytest

from keras_lm.serve import ServerThread

pytestmark = pytest.mark.browser
KEY = "playground-key"  # the server asks for it: the page must send it
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server():
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    keras.utils.set_random_seed(3)
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=64)
    with ServerThread(model, ByteTokenizer(), max_batch_size=2, model_name="tiny",
                      api_key=KEY) as running:
        yield running


def fill(browser, element_id, value):
    element = browser.find_element("id", element_id)
    element.clear()
    element.send_keys(str(value))


def generate_in_page(browser, url, prompt, **controls):
    """Types the prompt and the controls, presses Generate, waits; returns (completion, page)."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url + "/")

    def card(b):
        return b.find_element("id", "model").text

    WebDriverWait(browser, 30).until(
        lambda b: "needs an API key" in card(b) or card(b).startswith("tiny"))
    browser.asked_for_key = "needs an API key" in card(browser)
    if browser.asked_for_key:  # then the card loads with the key (kept for this tab)
        fill(browser, "api_key", KEY)
    WebDriverWait(browser, 30).until(lambda b: card(b).startswith("tiny"))
    fill(browser, "prompt", prompt)
    for element_id, value in controls.items():
        fill(browser, element_id, value)
    browser.find_element("id", "generate").click()
    WebDriverWait(browser, 60).until(
        lambda b: b.find_element("id", "status").text.startswith(("done", "error")))
    status = browser.find_element("id", "status").text
    assert status.startswith("done"), status
    completion = browser.execute_script("return document.getElementById('completion').textContent")
    return completion, browser


def test_the_playground_streams_the_same_text_as_the_api(server, browser):
    prompt = "the lazy dog"
    controls = dict(temperature=0.9, top_k=40, top_p=0.95, max_tokens=40, seed=123)
    browser.get(server.url + "/")
    browser.execute_script("sessionStorage.clear()")  # a new visitor: no key yet
    completion, page = generate_in_page(browser, server.url, prompt, **controls)
    assert page.asked_for_key
    answer = httpx.post(server.url + "/v1/completions", timeout=60, headers=AUTH, json=dict(
        prompt=prompt, **controls)).json()
    assert completion == answer["choices"][0]["text"]
    assert page.find_element("id", "prompt-echo").text == prompt
    stats = page.find_element("id", "stats").text
    assert "tokens/s" in stats and f"{answer['usage']['completion_tokens']} tokens" in stats
    # It streamed: the page counted more than one server-sent event.
    assert page.execute_script("return window.playgroundEvents") > 1


def test_a_stop_string_and_greedy_decoding_from_the_page(server, browser):
    greedy = httpx.post(server.url + "/v1/completions", timeout=60, headers=AUTH, json=dict(
        prompt="a", max_tokens=30, temperature=0)).json()["choices"][0]["text"]
    # Two printable characters a keyboard can type (not a backslash: the page reads \n).
    stop = next(greedy[i:i + 2] for i in range(2, len(greedy) - 1)
                if all(" " <= c <= "~" and c != "\\" for c in greedy[i:i + 2]))
    completion, _ = generate_in_page(browser, server.url, "a", temperature=0, max_tokens=30,
                                     stop=stop)
    assert completion == greedy[: greedy.index(stop)]
