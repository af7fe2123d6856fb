"""Makes docs/serving/playground.png: `keras-lm serve`'s playground after one generation.

Serves a trained run (default: saved_models/quickstart) in this process,
opens the playground in headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium), types a prompt, generates, and
saves the page. It lives in docs/ because what it makes is documentation.

    python docs/make_playground_screenshot.py [--model_dir=saved_models/quickstart]
"""

import argparse
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "serving", "playground.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", default="saved_models/quickstart")
    parser.add_argument("--prompt", default="import os\n")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import keras_lm
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from keras_lm.serve import ServerThread

    model = keras_lm.load(args.model_dir)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--window-size=1200,720"):
        options.add_argument(argument)
    name = os.path.basename(os.path.normpath(args.model_dir))
    with ServerThread(model, model.tokenizer, max_batch_size=1, model_name=name) as server:
        browser = webdriver.Chrome(options=options,
                                   service=Service(executable_path=shutil.which("chromedriver")))
        try:
            browser.get(server.url + "/")
            WebDriverWait(browser, 30).until(
                lambda b: not b.find_element("id", "model").text.startswith("loading"))
            for element_id, value in (("prompt", args.prompt), ("max_tokens", 160),
                                      ("temperature", 0.7), ("top_p", 0.95), ("seed", args.seed)):
                element = browser.find_element("id", element_id)
                element.clear()
                element.send_keys(str(value))
            browser.find_element("id", "generate").click()
            WebDriverWait(browser, 120).until(
                lambda b: b.find_element("id", "status").text.startswith("done"))
            os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
            browser.save_screenshot(OUTPUT)
        finally:
            browser.quit()
    print("wrote", OUTPUT)


if __name__ == "__main__":
    main()
