"""The training stages' DVCLive log: one step per epoch, written as each epoch ends."""

import http.server
import json
import threading

import keras
import numpy as np
import pytest

from tests.conftest import BINARY, FEATURE_SIZE
from transfer.models.networks import build_head
from transfer.training.datasets import feature_dataset
from transfer.training.epoch_log import FIGURES, EpochLog, figure_file, log_folder, read_epochs
from transfer.training.recipe import compile_for_phase, fit, seed_everything


def data(count=64, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 2).astype("float32")
    features = rng.normal(size=(count, FEATURE_SIZE)).astype("float32")
    features[:, :10] += (labels[:, None] * 2 - 1) * 2.0
    return feature_dataset(features, labels, 16)


class ReadsTheLogAtEachEpochEnd(keras.callbacks.Callback):
    """What a reader such as `dvc exp show` finds in metrics.json while training goes on."""

    def __init__(self, root):
        super().__init__()
        self.root, self.seen = root, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(json.loads((log_folder("finetune", self.root) / "metrics.json").read_text()))


def test_each_epoch_is_logged_as_it_ends_with_its_learning_rate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DVCLive looks for a repository from here: there is none
    seed_everything(0)
    head = build_head()
    train = data()
    # Cosine decay: the learning rate differs at every epoch's end.
    config = {
        "learning_rate": 0.01,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "epochs": 3,
        "optimizer": "adam",
        "label_smoothing": 0.0,
    }
    compile_for_phase(head, BINARY, config, len(train))
    log = EpochLog("finetune", root=tmp_path)
    rows = fit(head, train, data(seed=1), first_epoch=4, epochs=3, log=log)
    log.end()

    logged = read_epochs("finetune", tmp_path)
    assert [row["epoch"] for row in logged] == [5, 6, 7]
    for row, history in zip(logged, rows):
        assert {name: row[name] for name in history if name != "epoch"} == pytest.approx(
            {name: value for name, value in history.items() if name != "epoch"}, rel=1e-6
        )
    rates = [row["lr"] for row in logged]
    assert rates[0] > rates[1] > rates[2] >= 0.0
    # At the end, metrics.json holds the last epoch's figures, named after the stage.
    final = json.loads((log_folder("finetune", tmp_path) / "metrics.json").read_text())
    assert final == {"finetune": {name: pytest.approx(logged[-1][name]) for name in FIGURES}, "step": 7}


def test_metrics_json_holds_each_epoch_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seed_everything(0)
    head = build_head()
    train = data()
    compile_for_phase(
        head,
        BINARY,
        {"learning_rate": 0.001, "schedule": "constant", "warmup_epochs": 0, "epochs": 3}
        | {"optimizer": "rmsprop", "label_smoothing": 0.0},
        len(train),
    )
    log, reader = EpochLog("finetune", root=tmp_path), ReadsTheLogAtEachEpochEnd(tmp_path)
    # The reader runs after the log's own callback, as `dvc exp show` would between epochs.
    original_fit = head.fit

    def fit_with_reader(*args, callbacks, **kwargs):
        return original_fit(*args, callbacks=[*callbacks, reader], **kwargs)

    head.fit = fit_with_reader
    rows = fit(head, train, train, first_epoch=0, epochs=3, log=log)
    log.end()
    assert [seen["step"] for seen in reader.seen] == [1, 2, 3]
    for seen, row in zip(reader.seen, rows):
        assert seen["finetune"]["val_loss"] == pytest.approx(row["val_loss"])
        assert seen["finetune"]["lr"] == pytest.approx(0.001)


def test_a_new_log_starts_empty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stale = figure_file("train_head", "loss", tmp_path)
    stale.parent.mkdir(parents=True)
    stale.write_text("step\tloss\n9\t1.0\n")
    log = EpochLog("train_head", root=tmp_path)
    log.epoch(1, dict.fromkeys(FIGURES, 0.5))
    log.end()
    assert [row["epoch"] for row in read_epochs("train_head", tmp_path)] == [1]


class Recorded(http.server.BaseHTTPRequestHandler):
    """A stand-in for DVC Studio on 127.0.0.1: records each request's path and event."""

    requests = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Recorded.requests.append((self.path, body.get("type")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_dvc_studio_hears_nothing_unless_a_user_has_logged_in(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("DVC_STUDIO_REPO_URL", "https://example.com/project.git")
    for name in ("DVC_STUDIO_TOKEN", "STUDIO_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def two_epochs():
        log = EpochLog("train_head", root=tmp_path)
        for epoch in (1, 2):
            log.epoch(epoch, dict.fromkeys(FIGURES, 0.5))
        log.end()

    try:
        two_epochs()
        assert Recorded.requests == []
        # The control: logged in (a token), the same run posts its start, epochs and end.
        monkeypatch.setenv("DVC_STUDIO_TOKEN", "a-token")
        two_epochs()
        assert {event for _, event in Recorded.requests} >= {"start", "data", "done"}
    finally:
        server.shutdown()
