"""End to end: the real `dvc repro` in a temporary git repository, on real photos.

A few hundred of the shared cats and dogs photos, the shared ImageNet weights,
96 px: the whole pipeline in about a minute on two cores.
"""

import json
import math
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, copy_shared_subset, write_params

pytestmark = pytest.mark.e2e

STAGES = ["prepare", "extract", "train_head", "finetune", "evaluate"]


def run(command, cwd, check=True):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def stages_run(output):
    return re.findall(r"Running stage '(\w+)'", output)


def set_params(repo, **changes):
    path = repo / "params.yaml"
    write_params(path, yaml.safe_load(path.read_text()), **changes)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_photos, shared_weights):
    tmp = tmp_path_factory.mktemp("e2e")
    photos = copy_shared_subset(tmp / "photos", per_class=150)
    (photos / "dogs" / "notes.jpg").write_text("a text file named .jpg")

    repo = tmp / "repo"
    files = run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], PROJECT_ROOT
    ).stdout.split()
    for name in files:
        if name.startswith("tests/") or not (PROJECT_ROOT / name).is_file():
            continue
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / name, repo / name)
    run(["git", "init", "-q"], repo)
    set_params(
        repo,
        data__source="folder",
        data__path=str(photos),  # outside the repository, as ../shared is for a user
        data__image_size=96,
        data__split=[0.6, 0.2, 0.2],
        model__weights=str(shared_weights),
        train_head__epochs=5,
        train_head__learning_rate=0.001,
        finetune__epochs=1,
    )
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project"], repo)
    first = run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first run"], repo)
    return repo, first


def test_repro_runs_every_stage_and_writes_every_output(repo):
    repo, first = repo
    assert stages_run(first.stdout) == STAGES
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outputs = [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]
    assert len(outputs) == 14
    for path in outputs:
        assert (repo / path).exists(), path


def test_metrics_are_finite_and_accuracy_well_above_chance(repo):
    repo, _ = repo
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    for model in ("head", "finetuned"):
        assert set(evaluation[model]) == {"accuracy", "loss", "precision", "recall", "auc"}
        assert all(math.isfinite(value) for value in evaluation[model].values())
        assert evaluation[model]["accuracy"] >= 0.8, evaluation
    prepared = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert sum(prepared[split]["total"] for split in ("train", "validation", "test")) == 300
    assert prepared["skipped"] == 1
    skipped = json.loads((repo / "metrics" / "skipped.json").read_text())
    assert skipped[0]["path"] == "dogs/notes.jpg" and skipped[0]["reason"].startswith("unreadable")
    head = json.loads((repo / "metrics" / "train_head.json").read_text())
    assert head["final"]["val_accuracy"] > head["initial"]["val_accuracy"]


def test_plots_hold_both_phases(repo):
    repo, _ = repo
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert set(plots["data"]) >= {"loss", "accuracy", "plots/samples.png", "plots/learning_curves.png"}
    epochs = sorted({int(point["epoch"]) for point in plots["data"]["loss"][0]["content"]["data"]["values"]})
    assert epochs == [1, 2, 3, 4, 5, 6]


def test_nothing_changed_runs_nothing_and_a_head_param_reruns_only_downstream(repo):
    repo, _ = repo
    assert stages_run(run(["dvc", "repro"], repo).stdout) == []

    set_params(repo, train_head__learning_rate=0.0005)
    rerun = run(["dvc", "repro"], repo)
    assert stages_run(rerun.stdout) == ["train_head", "finetune", "evaluate"]

    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert "metrics/train_head.json" in diff
    changed = diff["metrics/train_head.json"]["final.val_loss"]
    assert changed["old"] != changed["new"]
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)
    learning_rate = params_diff["params.yaml"]["train_head.learning_rate"]
    assert (learning_rate["old"], learning_rate["new"]) == (0.001, 0.0005)
