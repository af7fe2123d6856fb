"""A real `tensorboard` server over a tiny run: what its tabs get from it."""

import gzip
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from keras_lm.training import HParamsLogger


# The tabs a run with every view on populates.
PLUGINS = ("scalars", "images", "text", "hparams", "projector", "histograms", "profile")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoardServer:
    """`tensorboard --logdir` on a free localhost port, as a subprocess."""

    def __init__(self, logdir):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}",
             "--host=127.0.0.1", f"--port={self.url.rsplit(':', 1)[1]}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def get(self, path, body=None):
        """The response body of GET (or POST `body` as JSON) `path`."""
        data = None if body is None else json.dumps(body).encode()
        # TensorBoard refuses POSTs without this header (its CSRF guard).
        headers = {"X-XSRF-Protected": "1", "Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            # Some plugins (the profile's) gzip their replies whatever was asked.
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return body

    def json(self, path, body=None):
        return json.loads(self.get(path, body))

    def wait_for(self, ready, timeout=90):
        """Polls until `ready(self)` is true (the server loads the logs after it starts)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.process.poll() is None, self.process.stderr.read()[-3000:]
            try:
                if ready(self):
                    return
            except (urllib.error.URLError, ConnectionError, KeyError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"tensorboard not ready after {timeout} s")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# The tiny run's logs sit at `tiny/logs` under the parent log directory.
RUN = "tiny/logs"
# Every run (event file directory) the server should find: the tiny run's
# views and the second session's.
RUNS = {RUN, "other/logs"} | {f"{RUN}/{run}" for run in (
    "train", "validation", "samples", "attention", "position_loss", "embeddings")}


@pytest.fixture(scope="module")
def server(tensorboard_run, tmp_path_factory):
    """TensorBoard over a parent directory: the tiny run and a second session.

    The second run is only an hparams session with a different learning rate
    and a final metric (no training): enough for the HParams tab to compare.
    """
    parent = tmp_path_factory.mktemp("parent")
    shutil.copytree(tensorboard_run / "logs", parent / RUN)
    other = HParamsLogger(str(parent / "other" / "logs"),
                          {"model": "transformer", "learning_rate": 1e-2, "batch_size": 4})
    other.on_train_begin()
    other.write_metrics({"val_bits_per_byte": 9.5}, step=4)
    server = TensorBoardServer(parent)
    try:
        server.wait_for(lambda s: RUNS <= set(s.json("/data/runs")))
        # The projector decides whether it is active in a background thread.
        server.wait_for(lambda s: all(p["enabled"] for name, p in
                                      s.json("/data/plugins_listing").items() if name in PLUGINS))
        yield server
    finally:
        server.stop()
    assert server.process.returncode is not None


def test_the_runs_are_the_views_written_and_the_final_scalars_are_the_metrics(
        server, tensorboard_run):
    # The fixture waited for these runs to appear (and their tabs to turn on);
    # here: no run besides them (a view logged twice or to a wrong directory),
    # and the final/ scalars hold the run's metrics.json, not just their tags.
    assert set(server.json("/data/runs")) == RUNS
    with open(tensorboard_run / "metrics.json", encoding="utf-8") as f:
        metrics = json.load(f)
    for name in ("val_bits_per_byte", "val_loss", "train_loss", "xz_val_bits_per_byte",
                 "steps", "tokens_seen", "num_parameters"):
        (point,) = scalars(server, RUN, f"final/{name}")
        assert point[2] == pytest.approx(metrics[name], rel=1e-6), name


def test_scalars(server):
    tags = server.json("/data/plugin/scalars/tags")
    for tag in ("epoch_loss", "epoch_perplexity", "epoch_bits_per_byte", "epoch_learning_rate",
                "epoch_tokens_per_second", "epoch_gradient_norm"):
        assert tag in tags[f"{RUN}/train"], tag
    assert "epoch_bits_per_byte" in tags[f"{RUN}/validation"]
    assert "final/val_bits_per_byte" in tags[RUN]
    points = scalars(server, f"{RUN}/train", "epoch_gradient_norm")
    assert [step for _, step, _ in points] == [0, 1]
    assert all(0 < value < 100 for _, _, value in points)
    rates = scalars(server, f"{RUN}/train", "epoch_learning_rate")
    assert all(0 < value <= 3e-3 for _, _, value in rates)


def scalars(server, run, tag):
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    return server.json(f"/data/plugin/scalars/scalars?{query}")


def test_text_samples(server):
    assert "samples" in server.json("/data/plugin/text/tags")[f"{RUN}/samples"]
    query = urllib.parse.urlencode({"run": f"{RUN}/samples", "tag": "samples"})
    samples = server.json(f"/data/plugin/text/text?{query}")
    assert [s["step"] for s in samples] == [2, 4]
    assert "sampler=temperature" in samples[-1]["text"] and "<pre><code>" in samples[-1]["text"]


def test_images(server):
    tags = server.json("/data/plugin/images/tags")
    assert set(tags[f"{RUN}/attention"]) == {"attention/layer_0", "attention/layer_1"}
    assert set(tags[f"{RUN}/position_loss"]) == {"position_loss"}
    for run, tag in (("attention", "attention/layer_1"), ("position_loss", "position_loss")):
        query = urllib.parse.urlencode({"run": f"{RUN}/{run}", "tag": tag})
        images = server.json(f"/data/plugin/images/images?{query}")
        assert [image["step"] for image in images] == [2, 4]
        png = server.get(f"/data/plugin/images/individualImage?{images[-1]['query']}")
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = tf.image.decode_png(png).shape
        assert 330 <= width <= 700 and 330 <= height <= 800, (height, width)


def test_hparams_compare_runs(server, tensorboard_run):
    experiment = server.json("/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {info["name"]: info for info in experiment["hparamInfos"]}
    assert hparams["learning_rate"]["type"] == "DATA_TYPE_FLOAT64"
    assert hparams["learning_rate"]["differs"] and not hparams["model"]["differs"]
    assert hparams["model"]["domainDiscrete"] == ["transformer"]
    assert "model_config.num_layers" in hparams
    metrics = {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert {("", "final/val_bits_per_byte"), ("validation", "epoch_loss")} <= metrics
    groups = server.json("/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
        "colParams": [], "startIndex": 0, "sliceSize": 10})
    by_rate = {}
    for group in groups["sessionGroups"]:
        values = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        by_rate[group["hparams"]["learning_rate"]] = values
    assert sorted(by_rate) == [pytest.approx(3e-3), pytest.approx(1e-2)]
    tiny, other = by_rate[min(by_rate)], by_rate[max(by_rate)]
    with open(tensorboard_run / "metrics.json", encoding="utf-8") as f:
        metrics = json.load(f)
    assert tiny[("", "final/val_bits_per_byte")] == pytest.approx(metrics["val_bits_per_byte"],
                                                                  rel=1e-6)
    assert 4 < tiny[("validation", "epoch_loss")] < 7
    assert other[("", "final/val_bits_per_byte")] == pytest.approx(9.5)


def test_projector(server):
    assert server.json("/data/plugin/projector/runs") == [f"{RUN}/embeddings"]
    info = server.json(f"/data/plugin/projector/info?run={RUN}/embeddings")
    (embedding,) = info["embeddings"]
    assert embedding["tensorShape"] == [259, 32]
    query = urllib.parse.urlencode({"run": f"{RUN}/embeddings", "name": embedding["tensorName"]})
    rows = server.get(f"/data/plugin/projector/metadata?{query}").decode().split("\n")
    assert rows[ord("d")] == "d" and rows[258] == "<eos>"
    matrix = np.frombuffer(server.get(f"/data/plugin/projector/tensor?{query}"), "float32")
    assert matrix.shape == (259 * 32,) and np.all(np.isfinite(matrix))


def test_histograms_and_profile(server):
    tags = server.json("/data/plugin/histograms/tags")[f"{RUN}/train"]
    assert any(tag.endswith("/block_0/mlp_in/kernel/histogram") for tag in tags)
    (run,) = server.json("/data/plugin/profile/runs")
    assert run.startswith(f"{RUN}/train/")
    tools = server.json("/data/plugin/profile/run_tools?" + urllib.parse.urlencode({"run": run}))
    assert "trace_viewer@" in tools or "trace_viewer" in tools

