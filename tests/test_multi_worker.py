"""runtime.strategy multi_worker, as a user runs it on two machines: two worker processes
on 127.0.0.1, each in its own clone of a real git+DVC project with its data from a DVC
remote. The chief runs `dvc repro`, the other `transfer worker STAGE`; the chief alone
writes, both end with the same weights, equal to one process's; a worker that dies
ends the chief's run in one line, with nothing written, and a rerun succeeds.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import (
    GIT,
    PROJECT_ROOT,
    cluster_env,
    commit,
    copy_shared_subset,
    free_ports,
    new_project,
    run,
    run_workers,
    set_params,
)

# Small enough for two processes on two cores: 23 photos per class at 96 px, batch 8 (4 per
# worker), dropout 0 (see test_two_workers_train_what_one_process_trains). The 34 training
# photos end in a batch of 2, which splits evenly too: one photo per worker.
PARAMS = dict(
    data__image_size=96,
    train_head__epochs=3,
    train_head__batch_size=8,
    train_head__dropout=0.0,
    finetune__epochs=2,
    finetune__batch_size=8,
    runtime__strategy="multi_worker",
)
# What a worker must never write: the outputs of train_head and of finetune, their DVCLive
# logs included (not even an empty folder).
HEAD_OUTPUTS = [
    "models/head.keras",
    "metrics/details/train_head.json",
    "dvclive/train_head",
    "dvclive/train_head/metrics.json",
    "dvclive/train_head/plots/metrics/train_head/val_loss.tsv",
]
FINETUNE_OUTPUTS = [
    "models/model.keras",
    "metrics/details/finetune.json",
    "dvclive/finetune",
    "dvclive/finetune/metrics.json",
    "dvclive/finetune/plots/metrics/finetune/val_loss.tsv",
]
OUTPUTS = HEAD_OUTPUTS + FINETUNE_OUTPUTS


# Keras's fit, evaluate and predict with the wrappers, on shuffled data with validation; in
# one process when there is no TF_CONFIG. argv: the .npz to save the weights and logs to.
WRAPPED_FIT = """
import os, sys
import numpy as np
import tensorflow as tf
from tests.conftest import BINARY
from transfer.distribute import multi_worker
from transfer.models.networks import build_head
from transfer.training.recipe import compile_model, seed_everything
from transfer.training.datasets import feature_dataset

if os.environ.get("TF_CONFIG"):
    multi_worker.patch_keras()
    strategy = multi_worker.multi_worker_strategy()
else:
    strategy = tf.distribute.get_strategy()
seed_everything(0)
rng = np.random.default_rng(0)
features, labels = rng.normal(size=(64, 1280)).astype(np.float32), (np.arange(64) % 2).astype(np.float32)
with strategy.scope():
    head = build_head(1, 0.0)
    compile_model(head, BINARY, 0.001)
    history = head.fit(
        feature_dataset(features, labels, 8, shuffle_buffer=64, seed=0),
        validation_data=feature_dataset(features, labels, 8),
        epochs=3,
        verbose=0,
    )
    loss, accuracy = head.evaluate(feature_dataset(features, labels, 8), verbose=0)
    predictions = head.predict(feature_dataset(features, labels, 8), verbose=0)
np.savez(sys.argv[1], *head.get_weights(), predictions=predictions, evaluated=[loss, accuracy],
         **{name: values for name, values in history.history.items()})
"""

# Runtime.agree with argv[1] as the params: two workers given different ones must both stop.
AGREE = """
import sys
from transfer.core.errors import run_stage
from transfer.distribute.runtime import start

def main():
    runtime = start({"strategy": "multi_worker", "mixed_precision": "auto", "threads": 0})
    runtime.agree("a stage", {"seed": sys.argv[1]})
    print("agreed")

run_stage(main)
"""


def test_wrapped_keras_fit_on_two_workers_equals_one_process(tmp_path):
    results = run_workers(WRAPPED_FIT, [[str(tmp_path / "w0.npz")], [str(tmp_path / "w1.npz")]])
    assert all(process.returncode == 0 for process, _, _ in results), results[0][2][-3000:]
    run([sys.executable, "-c", WRAPPED_FIT, str(tmp_path / "one.npz")], PROJECT_ROOT)
    workers = [np.load(tmp_path / f"w{index}.npz") for index in range(2)]
    one = np.load(tmp_path / "one.npz")
    for name in one.files:
        # Both workers hold the same weights, bit for bit, and the same logs.
        np.testing.assert_array_equal(workers[0][name], workers[1][name], err_msg=name)
        # One process's full-batch gradient against two half-batch gradients averaged: the
        # same up to float32 rounding; the same shuffled order each epoch (see patch_keras).
        np.testing.assert_allclose(workers[0][name], one[name], rtol=0, atol=1e-6, err_msg=name)
    assert len(one["predictions"]) == 64 and len(one["loss"]) == 3


def test_workers_that_disagree_both_stop_in_one_line():
    results = run_workers(AGREE, [["1"], ["2"]])
    for process, out, err in results:
        assert process.returncode == 1 and "agreed" not in out
        assert err.strip().splitlines()[-1].startswith("error: the cluster's workers disagree on a stage")
    results = run_workers(AGREE, [["1"], ["1"]])
    assert all(process.returncode == 0 and "agreed" in out for process, out, _ in results)


def test_a_last_batch_that_would_leave_a_replica_empty_is_refused():
    from transfer.core.errors import PipelineError
    from transfer.distribute.multi_worker import check_last_batches

    check_last_batches("finetune", 8, {"train": 34, "validation": 4}, replicas=2)  # 2 and 4: one each
    check_last_batches("finetune", 8, {"train": 32}, replicas=2)  # no partial batch
    with pytest.raises(
        PipelineError, match="finetune.batch_size = 8 leaves the train split's last batch 1 of 33"
    ):
        check_last_batches("finetune", 8, {"train": 33, "validation": 4}, replicas=2)
    with pytest.raises(PipelineError, match="validation split's last batch 2 of 10 photos, fewer than the 3"):
        check_last_batches("train_head", 8, {"train": 32, "validation": 10}, replicas=3)


def test_a_missing_worker_fails_the_chief_in_one_line_after_the_join_timeout():
    started = time.monotonic()
    ports = free_ports(2)
    result = subprocess.run(
        [sys.executable, "-c", AGREE, "1"],
        cwd=PROJECT_ROOT,
        env={**cluster_env(ports, 0), "TRANSFER_JOIN_TIMEOUT": "5"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL  # see multi_worker.multi_worker_strategy
    assert result.stderr.strip().splitlines()[-1] == (
        "error: not every worker of TF_CONFIG's cluster joined within 5 s: start `transfer worker STAGE` "
        "on each other machine (docs/scale.md)"
    )
    assert time.monotonic() - started < 60


def start(command, cwd, env, log):
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def train_on_two_workers(chief, worker, stage, tmp_path):
    """The chief's `dvc repro STAGE` and the worker's `transfer worker STAGE`, side by side."""
    ports = free_ports(2)
    logs = [open(tmp_path / f"{stage}-{name}.log", "w+") for name in ("chief", "worker")]
    processes = [
        start(["dvc", "repro", stage], chief, cluster_env(ports, 0), logs[0]),
        start(["transfer", "worker", stage], worker, cluster_env(ports, 1), logs[1]),
    ]
    for process, log in zip(processes, logs):
        process.wait(timeout=600)
        log.seek(0)
        assert process.returncode == 0, log.read()[-4000:]


def share(chief, worker, stage, message):
    """A stage's outputs from the chief to a worker: `git push` and `dvc push` on the chief,
    `git pull` and `dvc pull` on the worker."""
    commit(chief, message)
    run(["dvc", "push", "-q", stage], chief)
    run([*GIT, "pull", "-q", "--no-rebase", str(chief), "HEAD"], worker)
    run(["dvc", "pull", "-q", stage], worker)


def weights(path):
    import keras

    return keras.saving.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, shared_weights):
    """A project run to its extract stage, its DVC remote, and a worker's clone of it."""
    root = tmp_path_factory.mktemp("cluster")
    photos = copy_shared_subset(root / "photos", per_class=23)
    chief, _ = new_project(root, photos, first_run=["extract"], model__weights=str(shared_weights), **PARAMS)
    run(["dvc", "remote", "add", "-d", "storage", str(root / "storage")], chief)
    commit(chief, "remote")
    run(["dvc", "push", "-q"], chief)
    run(["git", "clone", "-q", str(chief), str(root / "worker")], root)
    worker = root / "worker"
    run(["dvc", "pull", "-q", "--with-deps", "extract"], worker)
    return chief, worker


@pytest.fixture(scope="module")
def trained(cluster, tmp_path_factory):
    chief, worker = cluster
    logs = tmp_path_factory.mktemp("logs")
    train_on_two_workers(chief, worker, "train_head", logs)
    written_by_worker = [name for name in OUTPUTS if (worker / name).exists()]
    share(chief, worker, "train_head", "head on two workers")
    train_on_two_workers(chief, worker, "finetune", logs)
    written_by_worker += [name for name in FINETUNE_OUTPUTS if (worker / name).exists()]
    commit(chief, "fine-tuned on two workers")
    return chief, written_by_worker


def test_the_chief_alone_writes_the_outputs(trained):
    chief, written_by_worker = trained
    assert written_by_worker == []
    assert all((chief / name).exists() for name in OUTPUTS)
    runtime = json.loads((chief / "metrics" / "details" / "finetune.json").read_text())["runtime"]
    assert (runtime["strategy"], runtime["workers"], runtime["devices"]) == ("multi_worker", 2, 2)
    assert run(["dvc", "status", "finetune"], chief).stdout.strip().endswith("up to date.")


def test_two_workers_train_what_one_process_trains(trained, tmp_path):
    chief, _ = trained
    one = tmp_path / "one"
    run(["git", "clone", "-q", str(chief), str(one)], tmp_path)
    run(["dvc", "pull", "-q", "--with-deps", "extract"], one)
    set_params(one, runtime__strategy="default")
    run(["dvc", "repro", "finetune"], one)
    # The same global batches in the same order, each worker's half-batch gradient averaged
    # over the two: equal to one process's full-batch gradient up to float32 rounding of
    # the sums. With dropout > 0 it would not be: each worker draws its own masks.
    for name in ("head.keras", "model.keras"):
        for multi, single in zip(weights(chief / "models" / name), weights(one / "models" / name)):
            np.testing.assert_allclose(multi, single, rtol=0, atol=1e-5, err_msg=name)
    histories = [
        json.loads((repo / "metrics" / "details" / "finetune.json").read_text())["final"]
        for repo in (chief, one)
    ]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert histories[0][key] == pytest.approx(histories[1][key], abs=1e-5), key


def test_a_worker_that_dies_ends_the_chiefs_run_in_one_line(cluster, tmp_path):
    chief, worker = cluster
    ports = free_ports(2)
    chief_log, worker_log = open(tmp_path / "chief.log", "w+"), open(tmp_path / "worker.log", "w+")
    set_params(chief, train_head__epochs=400)
    set_params(worker, train_head__epochs=400)
    repro = start(["dvc", "repro", "train_head"], chief, cluster_env(ports, 0), chief_log)
    killed = start([sys.executable, "-m", "stages.train_head"], worker, cluster_env(ports, 1), worker_log)
    deadline = time.monotonic() + 300
    while "Epoch 3/" not in (tmp_path / "worker.log").read_text():
        assert killed.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    repro.wait(timeout=180)
    took = time.monotonic() - killed_at
    print(f"the chief failed {took:.1f} s after the worker was killed")
    chief_log.seek(0)
    output = chief_log.read()
    assert repro.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) >= 1 and "a worker of the cluster stopped answering" in errors[0], output[-3000:]
    assert took < 120
    written = [path.name for path in chief.rglob("*") if path.name.startswith(".partial-")]
    # What a failed stage keeps is its DVCLive log of the epochs that ended (what a person
    # watching saw); no output of the stage, and DVC reruns it.
    left = [name for name in HEAD_OUTPUTS if (chief / name).exists() and not name.startswith("dvclive/")]
    assert written + left == []
    assert "train_head" in run(["dvc", "status", "train_head"], chief).stdout

    # Not the committed epochs, which DVC would restore from its cache without training.
    set_params(chief, train_head__epochs=4)
    set_params(worker, train_head__epochs=4)
    train_on_two_workers(chief, worker, "train_head", tmp_path)
    assert (chief / "models" / "head.keras").is_file()


def test_transfer_worker_refuses_what_would_not_train_in_one_line(tmp_path):
    from tests.conftest import write_params

    def worker(tf_config, cwd=tmp_path):
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config) if tf_config is not None else ""}
        result = subprocess.run(
            ["transfer", "worker", "train_head"], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert result.returncode == 2 and result.stdout == ""
        return result.stderr.strip()

    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    second = {"cluster": cluster, "task": {"type": "worker", "index": 1}}
    assert worker(second) == "error: no stages folder or params.yaml here: run this at the top of the project"
    (tmp_path / "stages").mkdir()
    write_params(tmp_path / "params.yaml")
    assert worker(None) == "error: TF_CONFIG names no cluster of two or more workers (docs/scale.md)"
    assert worker({**second, "task": {"type": "worker", "index": 0}}) == (
        "error: TF_CONFIG's task is the chief: run `dvc repro` (or `dvc exp run`) there"
    )
    assert worker(second) == "error: params.yaml: runtime.strategy is 'auto': set it to multi_worker"
