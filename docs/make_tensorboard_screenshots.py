"""Makes the README's TensorBoard screenshots: real runs, real server, real browser.

Trains two tiny Transformers on the built-in corpus with `keras-lm train`
(every view on, two learning rates, so the HParams tab has a comparison),
starts `tensorboard` on their parent directory, and photographs each
populated tab with headless Chromium. The PNGs go to docs/tensorboard/.

It lives in docs/ because what it makes is documentation (benchmarks/ is for
speed figures). Needs Debian's `chromium` (apt-get install chromium) and the
`profile` extra for the profile tab; the test suite needs neither.

    python docs/make_tensorboard_screenshots.py              # ~3 minutes on 2 cores
    python docs/make_tensorboard_screenshots.py --reuse_runs  # photograph again only
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "tensorboard")
RUNS = {"lr_3e-3": "3e-3", "lr_1e-2": "1e-2"}
# Tab (URL fragment) -> file name. Scalars, images and histograms are shown
# by the Time Series tab too; each has its own tab as well.
TABS = {
    "scalars": "scalars",
    "images": "images",
    "text": "text",
    "hparams": "hparams",
    "projector": "projector",
    "histograms": "histograms",
    "profile": "profile",
}


def train(root):
    for name, rate in RUNS.items():
        command = [sys.executable, "-m", "keras_lm.cli.main", "train", "--recipe=tiny",
                   "--steps=240", "--eval_interval=60", "--val_steps=8",
                   f"--learning_rate={rate}", "--sample_prompt=def ", "--sample_tokens=48",
                   "--histograms", "--profile_steps=5,7", "--verbose=0",
                   f"--output_dir={os.path.join(root, name)}"]
        print("+", " ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_served(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/data/plugins_listing", timeout=5) as reply:
                if b'"projector": {"disable_reload": false, "enabled": true' in reply.read() \
                        or time.time() > deadline - timeout / 2:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"tensorboard did not answer at {url}")


def screenshot(url, path, width=1400, height=900):
    """One page, after its scripts ran and fetched their data, as a small PNG."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu-sandbox",
             "--hide-scrollbars", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--virtual-time-budget=20000", f"--screenshot={path}", url],
            check=True, capture_output=True, timeout=180,
        )
    # A 256-colour palette keeps a screenshot of flat UI under 300 KB.
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"{path}: {os.path.getsize(path) // 1024} KB", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "keras_lm_tb_docs"))
    parser.add_argument("--reuse_runs", action="store_true")
    args = parser.parse_args()
    if not args.reuse_runs:
        shutil.rmtree(args.root, ignore_errors=True)
        train(args.root)
    os.makedirs(OUTPUT, exist_ok=True)
    url = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", f"--logdir={args.root}",
         "--host=127.0.0.1", f"--port={url.rsplit(':', 1)[1]}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_served(url)
        time.sleep(5)  # let the projector and profile plugins find their files
        for tab, name in TABS.items():
            screenshot(f"{url}/#{tab}", os.path.join(OUTPUT, f"{name}.png"))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
