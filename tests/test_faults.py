"""Faults injected for real: stages killed with a signal mid-way, then `dvc repro` again.

A killed stage must leave nothing a later stage or DVC could take for a
finished output, and the next `dvc repro` must give what an uninterrupted run
gives.
"""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import GIT, PROJECT_ROOT, copy_shared_subset, new_project, run, write_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_photos, shared_weights):
    tmp = tmp_path_factory.mktemp("faults")
    photos = copy_shared_subset(tmp / "photos", per_class=100)
    repo, _ = new_project(
        tmp,
        photos,
        first_run=["runtime", "prepare"],
        data__image_size=128,
        model__weights=str(shared_weights),
        finetune__epochs=2,
        finetune__cache_bottom=False,  # epochs through the whole model: slow enough to interrupt
    )
    return repo


def start_stage(repo, stage):
    return subprocess.Popen(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(condition, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the stage finished before the fault could be injected"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def locked_hash(repo, path):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] == path
    )


def test_sigkill_during_extract_leaves_no_features_and_repro_recovers(repo):
    process = start_stage(repo, "extract")
    partial = repo / "data" / ".partial-features"
    wait_for(lambda: (partial / "train_features.npy").exists(), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (repo / "data" / "features").exists()

    run(["dvc", "repro", "extract"], repo)
    assert not partial.exists()
    recovered = locked_hash(repo, "data/features")
    run(["dvc", "repro", "--force", "extract"], repo)  # an uninterrupted run
    assert locked_hash(repo, "data/features") == recovered


def test_sigint_during_finetune_leaves_no_model_and_repro_recovers(repo):
    import keras

    run(["dvc", "repro", "train_head"], repo)
    process = start_stage(repo, "finetune")
    output = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    wait_for(lambda: "Epoch " in "".join(output), process)
    process.send_signal(signal.SIGINT)  # inside the first epoch
    process.wait(timeout=120)
    reader.join(timeout=10)
    assert process.returncode == 130, "".join(output)
    assert "interrupted" in "".join(output)
    assert not (repo / "models" / "model.keras").exists()
    assert not list((repo / "models").glob(".partial-*"))

    run(["dvc", "repro", "finetune"], repo)
    recovered = keras.models.load_model(repo / "models" / "model.keras").get_weights()
    run(["dvc", "repro", "--force", "finetune"], repo)  # an uninterrupted run
    uninterrupted = keras.models.load_model(repo / "models" / "model.keras").get_weights()
    for a, b in zip(recovered, uninterrupted):
        np.testing.assert_array_equal(a, b)


def declared_outputs(repo):
    """Every path a stage of dvc.yaml declares (outs and metrics), as written there."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return {
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in stages.values()
        for section in ("outs", "metrics")
        for entry in stage.get(section, [])
    }


def test_stages_write_only_their_declared_outputs(repo, user_cache):
    outside = sorted(path for path in repo.parent.rglob("*") if repo not in path.parents and path != repo)
    stat_before = {path: path.stat().st_mtime_ns for path in outside}
    # LiteRT too: its conversions go to the user's cache, outside the project.
    write_params(
        repo / "params.yaml",
        yaml.safe_load((repo / "params.yaml").read_text()),
        extract__runtime="litert",
        evaluate__runtime="litert",
    )
    run([*GIT, "commit", "-qam", "litert"], repo)
    # Another test in this process may have converted the same base already: start empty.
    for conversion in user_cache.glob("*.tflite"):
        conversion.unlink()
    run(["dvc", "repro"], repo)
    assert len(list(user_cache.glob("*.tflite"))) == 2  # the base, the model
    # Every file git does not track, one by one (-uall lists inside untracked and ignored folders).
    status = run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], repo).stdout
    outputs = declared_outputs(repo) | {"dvc.lock"}
    # DVC's own: its cache, its temporary folder, and the .gitignore it keeps beside outputs.
    dvc_files = {".dvc/cache/", ".dvc/tmp/"}
    gitignores = {str(Path(output).parent / ".gitignore") for output in outputs}
    stray = [
        line
        for line in status.splitlines()
        if not (
            (path := line[3:]) in outputs | gitignores
            or any(path.startswith(f"{output}/") for output in outputs)
            or any(path.startswith(folder) for folder in dvc_files)
            or "__pycache__/" in path
        )
    ]
    assert stray == []
    assert {path: path.stat().st_mtime_ns for path in outside} == stat_before
    assert PROJECT_ROOT not in repo.parents
