"""End to end, as a team works: a queued sweep run two at a time (`dvc queue
start -j 2`) gives exactly what each experiment gives alone and compares with
`dvc exp show`, `dvc metrics diff` and `dvc plots diff`; and the shared cache
round trip — a local-directory DVC remote and a bare git remote: push, a fresh
clone, pull, nothing to rerun, the same predictions.
"""

import csv
import io
import json
import shutil
import subprocess
import sys
import time

import dvc.api
import pytest
import yaml

from tests.conftest import (
    ALWAYS_RUN,
    GIT,
    PROJECT_ROOT,
    copy_shared_subset,
    exp_show_while_running,
    experiment_rows,
    new_project,
    plot_values,
    reset,
    row_metrics,
    run,
    stages_run,
)
from transfer.core.records import read_record

pytestmark = pytest.mark.e2e

SWEEP = ("80", "120")  # finetune.fine_tune_at
LOG = "dvclive/finetune/metrics.json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_photos, shared_weights):
    tmp = tmp_path_factory.mktemp("e2e_team")
    photos = copy_shared_subset(tmp / "photos", per_class=50)
    repo, _ = new_project(
        tmp,
        photos,
        first_run=True,
        data__image_size=96,
        data__split=[0.6, 0.2, 0.2],
        model__weights=str(shared_weights),
        train_head__epochs=3,
        train_head__learning_rate=0.001,
        finetune__epochs=1,
        export__calibration_images=20,
        export__latency_images=1,
        runtime__threads=1,  # two experiments at a time on two cores: one thread each
    )
    return repo


def eval_metrics_by_experiment(repo):
    """{fine_tune_at: (experiment name, its evaluation record, its commit)} of the experiments
    in `dvc exp show`."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                data = revision["data"]
                fine_tune_at = str(data["params"]["params.yaml"]["data"]["finetune"]["fine_tune_at"])
                # A record is cached by DVC, not committed to git: read through DVC.
                record = dvc.api.read("metrics/details/eval.json", repo=str(repo), rev=revision["rev"])
                found[fine_tune_at] = (revision["name"], json.loads(record), revision["rev"])
    return found


def running_finetune_figures(repo):
    """[(experiment name, dvclive/finetune/metrics.json)] of the running experiments."""
    running = [
        (row["name"], row_metrics(row).get(LOG, {}))
        for executor, row in experiment_rows(exp_show_while_running(repo) or [])
        if executor and executor["state"] == "running"
    ]
    return [(name, metrics["data"]) for name, metrics in running if "data" in metrics]


@pytest.fixture(scope="module")
def sweep(repo):
    """The queued sweep, run two at a time: (`dvc queue status`, eval_metrics_by_experiment,
    what `dvc exp show` showed of the running experiments' fine-tuning)."""
    # Up to evaluate: the metrics compared are evaluate's, and export's conversions would double the time.
    values = ["-S", f"finetune.fine_tune_at={','.join(SWEEP)}"]
    run(["dvc", "exp", "run", "--queue", *values, "evaluate"], repo)
    # Not through run(): the queue's workers inherit the command's pipes, and reading those to
    # their end would wait for the whole sweep.
    start = ["dvc", "queue", "start", "-j", "2"]
    subprocess.run(start, cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = []
    for _ in range(300):
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        if "Running" in status:  # each look costs the two runs a few CPU-seconds
            running += running_finetune_figures(repo)
        time.sleep(4)
    return status, eval_metrics_by_experiment(repo), running


@pytest.fixture(autouse=True)
def from_the_first_run(repo):
    """Every test starts from the committed first run, whatever ran before it."""
    reset(repo)


def test_two_queued_experiments_at_once_give_what_each_gives_alone(repo, sweep):
    status, queued, _ = sweep
    assert status.count("Success") == 2, status
    assert set(queued) == set(SWEEP)

    # Alone, one after the other, in the workspace. Without DVC's run cache,
    # which would otherwise restore the queued runs' outputs instead of running.
    shutil.rmtree(repo / ".dvc" / "cache" / "runs")
    for fine_tune_at in SWEEP:
        alone = run(["dvc", "exp", "run", "-S", f"finetune.fine_tune_at={fine_tune_at}", "evaluate"], repo)
        assert stages_run(alone.stdout) == ["finetune", "calibrate", "evaluate"]
        evaluation = read_record("eval", repo)
        assert evaluation == queued[fine_tune_at][1], fine_tune_at


def test_the_sweep_compares_in_exp_show_metrics_diff_and_plots_diff(repo, sweep):
    table = list(csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv"], repo).stdout)))
    experiments = [row for row in table if row["Experiment"] and row["finetune.fine_tune_at"] in SWEEP]
    assert sorted({row["finetune.fine_tune_at"] for row in experiments}) == sorted(SWEEP)
    assert all(row["finetuned.accuracy"] and row["head.accuracy"] for row in experiments)
    _, queued, _ = sweep
    first, second = (queued[fine_tune_at][0] for fine_tune_at in SWEEP)

    diff = json.loads(run(["dvc", "metrics", "diff", "--all", "--json", first, second], repo).stdout)
    accuracy = diff["metrics/eval.json"]["finetuned.accuracy"]
    assert (accuracy["old"], accuracy["new"]) == tuple(
        queued[fine_tune_at][1]["finetuned"]["accuracy"] for fine_tune_at in SWEEP
    )
    plots = json.loads(run(["dvc", "plots", "diff", "--json", first, second], repo).stdout)
    for name in ("confusion", "roc", "precision_recall", "loss", "accuracy"):
        assert {point["rev"] for point in plot_values(plots, name)} == {first, second}, name

    run(["dvc", "exp", "apply", second], repo)
    assert yaml.safe_load((repo / "params.yaml").read_text())["finetune"]["fine_tune_at"] == int(SWEEP[1])


def test_exp_show_shows_queued_experiments_fine_tuning_while_they_run(repo, sweep):
    _, queued, running = sweep
    baseline = json.loads((repo / LOG).read_text())["finetune"]
    final = {
        name: json.loads(run(["git", "show", f"{rev}:{LOG}"], repo).stdout)["finetune"]
        for name, _, rev in queued.values()
    }
    # A running experiment's own epoch: not the baseline's figures, and those it ended with
    # (fine-tuning runs one epoch; calibrate and evaluate follow).
    live = [(name, figures["finetune"]) for name, figures in running if figures["finetune"] != baseline]
    assert live, running
    assert all(figures == final[name] for name, figures in live)


def predictions(model, photos):
    command = [sys.executable, "-m", "transfer", "predict", "--runtime", "keras", str(model), str(photos)]
    result = run(command, PROJECT_ROOT)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_shared_remote_round_trip(repo, sweep, tmp_path):
    experiment = sweep[1][SWEEP[0]][0]
    storage, origin = tmp_path / "dvc-storage", tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    run(["dvc", "remote", "add", "-d", "storage", str(storage)], repo)
    run(["git", "add", ".dvc/config"], repo)
    run([*GIT, "commit", "-qm", "shared DVC remote"], repo)
    run(["git", "remote", "add", "origin", str(origin)], repo)
    run(["git", "push", "-q", "origin", "HEAD:main"], repo)
    run(["dvc", "push"], repo)
    run(["dvc", "exp", "push", "origin", experiment], repo)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    status = run(["dvc", "status"], clone).stdout
    # Only the stages that run on every repro (the runtime stage resolves this machine, the pool
    # stage lists data.unlabeled) are ever "changed".
    assert status.strip() == "\n".join(f"{stage}:\n\talways changed" for stage in ALWAYS_RUN), status
    assert stages_run(run(["dvc", "repro"], clone).stdout) == []
    photos = yaml.safe_load((repo / "params.yaml").read_text())["data"]["path"]
    assert predictions(clone / "models" / "model.keras", photos) == predictions(
        repo / "models" / "model.keras", photos
    )

    run(["dvc", "exp", "pull", "origin", experiment], clone)
    assert experiment in run(["dvc", "exp", "list", "--all-commits", "--name-only"], clone).stdout
