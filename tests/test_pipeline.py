"""End to end: the real `dvc repro` in a temporary git repository, on real photos.

A few hundred of the shared cats and dogs photos, the shared ImageNet weights,
128 px: the whole pipeline in about a minute on two cores.
"""

import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dvc.api
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import (
    FEATURE_TOLERANCE,
    LITERT_TOLERANCE,
    PROJECT_ROOT,
    SHARED,
    SHARED_PHOTOS,
    STAGES,
    assert_apps_run_the_exports_as_predict_does,
    copy_shared_subset,
    exp_show_while_running,
    experiment_rows,
    jpeg_with_orientation,
    new_project,
    plot_values,
    reset,
    row_metrics,
    run,
    served_outputs,
    set_params,
    stages_run,
)
from transfer.core.io import file_sha256
from transfer.core.records import HEADLINE, read_record
from transfer.data.images import load_image
from transfer.data.shards import SPLITS
from transfer.inference.bundle import open_bundle
from transfer.models.loading import load_model
from transfer.training.epoch_log import read_epochs

pytestmark = pytest.mark.e2e

LONG_STEPS = [
    "prepare: decoding photos",
    "extract: features",
    "audit: reading photos",
    "audit: comparing candidate duplicates",
    "finetune: caching the frozen bottom",
    "calibrate: fine-tuned model",
    "evaluate: fine-tuned model",
    "evaluate: novelty",
    "export: converting",
    "export: int8 calibration",
    "export: measuring every format",
]


CAT_ORIGINAL, CAT_COPY = "cat.3.jpg", "cat.3-copy.jpg"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_photos, shared_weights):
    tmp = tmp_path_factory.mktemp("e2e")
    photos = copy_shared_subset(tmp / "photos", per_class=150)
    (photos / "dogs" / "notes.jpg").write_text("a text file named .jpg")
    unknown = tmp / "flowers"  # photos of none of the classes, from the other shared set
    unknown.mkdir()
    for path in flower_photos()[:40]:
        (unknown / f"{path.parent.name}_{path.name}").write_bytes(path.read_bytes())
    # A cat in the dogs' folder, resized and re-saved: what the audit is there to find.
    with Image.open(photos / "cats" / CAT_ORIGINAL) as cat:
        cat.resize((cat.width * 4 // 5, cat.height * 4 // 5)).save(photos / "dogs" / CAT_COPY, quality=70)
    return new_project(
        tmp,
        photos,
        first_run=True,
        data__image_size=128,
        # A big test split: the export checks allow 1.5 points, under one image of 60.
        data__split=[0.5, 0.15, 0.35],
        model__weights=str(shared_weights),
        train_head__epochs=5,
        train_head__learning_rate=0.001,
        finetune__epochs=1,
        export__calibration_images=200,
        export__latency_images=5,
        evaluate__unknown_photos=str(unknown),
        # 48 validation photos: at 0.98 the threshold would be their largest score.
        calibrate__accept=0.9,
    )


def flower_photos():
    """Every 60th shared flower photo, of all five kinds: 49 photos."""
    return sorted((SHARED / "data" / "flower_photos").rglob("*.jpg"))[::60]


@pytest.fixture(autouse=True)
def from_the_first_run(repo):
    """Every test starts from the committed first run, whatever ran before it."""
    reset(repo[0])


def test_repro_runs_every_stage_and_writes_every_output(repo):
    repo, first = repo
    assert stages_run(first.stdout) == STAGES
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outputs = {out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
    assert outputs >= {
        "data/prepared",
        "data/features",
        "models/head.keras",
        "models/model.keras",
        "metrics/eval.json",
        "metrics/predictions.csv",
        "plots/misclassified.png",
        "dvclive/train_head/plots",
        "dvclive/finetune/plots",
        "metrics/details/eval.json",
        "plots/roc",
        "plots/precision_recall",
        "models/classes.json",
        "models/calibration.json",
        "models/novelty.npz",
        "export",
        "metrics/export.json",
        "metrics/audit.json",
        "metrics/duplicates.csv",
        "metrics/label_issues.csv",
        "plots/duplicates.png",
        "plots/label_issues.png",
    }
    for path in outputs:
        assert (repo / path).exists(), path
    # DVC's log of the run: one summary line per long step, and no TensorFlow start-up lines.
    log = first.stdout + first.stderr
    for step in LONG_STEPS:
        assert len(re.findall(rf"^{re.escape(step)}: \d+ \w+ in [\d.]+ s \(", log, re.M)) == 1, step
    assert "cuInit" not in log and "oneDNN" not in log and "absl::InitializeLog" not in log


def test_the_run_report_has_the_changed_params_and_the_metrics(repo):
    repo, _ = repo
    report = (repo / "metrics" / "report.md").read_text().splitlines()
    evaluation = read_record("eval", repo)
    assert "| `data.image_size` | 100 | 128 |" in report
    assert "| `train_head.epochs` | 2 | 5 |" in report
    head, finetuned = evaluation["head"]["accuracy"], evaluation["finetuned"]["accuracy"]
    assert f"| accuracy | {head:.4f} | {finetuned:.4f} |" in report
    cats = evaluation["finetuned"]["per_class"]["cats"]
    assert (
        f"| cats | {cats['precision']:.4f} | {cats['recall']:.4f} | {cats['f1']:.4f} | {cats['support']} |"
        in report
    )


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_the_audit_finds_the_copied_cat_and_exclusions_clean_it_up(repo):
    repo, _ = repo
    copy, original = f"dogs/{CAT_COPY}", f"cats/{CAT_ORIGINAL}"
    audit = read_record("audit", repo)
    prepared = read_record("prepare", repo)
    assert audit["classes"] == {"cats": 150, "dogs": 151}  # notes.jpg skipped, the copy counted
    assert audit["photos"] == {split: prepared[split]["total"] for split in SPLITS}
    group_of = {row["path"]: row["group"] for row in read_rows(repo / "metrics" / "duplicates.csv")}
    assert group_of[copy] == group_of[original]
    issues = {row["path"]: row for row in read_rows(repo / "metrics" / "label_issues.csv")}
    assert issues[copy]["given"] == "dogs" and issues[copy]["suggested"] == "cats"
    assert "## Data health (audit stage)" in (repo / "metrics" / "report.md").read_text()

    # The user's review: the copy is a cat (moved to its class), and a dog photo is dropped.
    dropped = "dogs/dog.0.jpg"
    (repo / "data" / "exclusions.csv").write_text(f"path,action\n{copy},cats\n{dropped},drop\n")
    rerun = run(["dvc", "repro", "evaluate"], repo)
    rerun_stages = ["prepare", "extract", "audit", "train_head", "finetune", "calibrate", "evaluate"]
    assert stages_run(rerun.stdout) == rerun_stages
    after = read_record("prepare", repo)
    assert after["excluded"] == {"dropped": 1, "relabelled": 1}
    totals = [sum(summary[split]["total"] for split in SPLITS) for summary in (prepared, after)]
    assert totals[1] == totals[0] - 1
    audit = read_record("audit", repo)
    assert audit["classes"] == {"cats": 151, "dogs": 149}
    duplicates = read_rows(repo / "metrics" / "duplicates.csv")
    assert {row["path"]: row["class"] for row in duplicates}[copy] == "cats"  # still a copy, now a cat's
    assert dropped not in {
        row["path"] for row in duplicates + read_rows(repo / "metrics" / "label_issues.csv")
    }
    assert copy not in {row["path"] for row in read_rows(repo / "metrics" / "label_issues.csv")}
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert "metrics/eval.json" in diff
    # The detail, by the recipe of the README: a record as the target.
    targets = ["--targets", "metrics/details/prepare.json"]
    details = json.loads(run(["dvc", "metrics", "diff", "--json", *targets], repo).stdout)
    assert details["metrics/details/prepare.json"]["excluded.dropped"] == {"old": 0, "new": 1, "diff": 1}


def test_metrics_are_finite_and_accuracy_well_above_chance(repo):
    repo, _ = repo
    evaluation = read_record("eval", repo)
    for model in ("head", "finetuned"):
        overall = {name: value for name, value in evaluation[model].items() if name != "per_class"}
        # The tutorial's binary keys stay (dvc metrics diff lines up with older runs); macro ones are new.
        assert set(overall) == {"accuracy", "loss", "precision", "recall", "f1", "auc"} | {
            "balanced_accuracy",
            "macro_precision",
            "macro_recall",
            "macro_f1",
        }
        assert all(math.isfinite(value) for value in overall.values())
        assert evaluation[model]["accuracy"] >= 0.8, evaluation
    # Temperature scaling, fitted on validation: its log loss there can only fall.
    calibration = evaluation["calibration"]
    assert calibration["temperature"] > 0 and calibration["bins"] == 15
    validation = calibration["validation"]
    assert validation["log_loss_after"] <= validation["log_loss_before"] + 1e-9
    assert calibration["validation"]["log_loss_before"] == pytest.approx(evaluation["validation"]["loss"])
    bins = list(csv.DictReader((repo / "plots" / "reliability" / "before.csv").open()))
    assert sum(int(row["images"]) for row in bins) == evaluation["test_images"]
    # The calibrate stage's temperature is the one evaluate reports; its threshold accepts at
    # least 90% of the validation photos, in the stage's NumPy and in evaluate's Keras graph.
    calibrate = read_record("calibrate", repo)
    novelty = evaluation["novelty"]
    assert calibrate["temperature"] == calibration["temperature"]
    assert calibrate["novelty"]["threshold"] == novelty["threshold"] and novelty["method"] == "knn"
    assert calibrate["validation_accepted"] >= 0.9 and novelty["validation_accepted"] >= 0.9
    assert novelty["test_accepted"] >= 0.85
    # The 40 flower photos: most are rejected, and they rank above the test photos.
    assert novelty["unknown"]["photos"] == 40 and novelty["unknown"]["unreadable"] == 0
    assert novelty["unknown"]["rejected"] >= 0.8 and novelty["unknown"]["auroc_against_test"] >= 0.95
    prepared = read_record("prepare", repo)
    assert sum(prepared[split]["total"] for split in SPLITS) == 301  # 150 + 150 and the copied cat
    assert prepared["skipped"] == 1
    skipped = json.loads((repo / "metrics" / "skipped.json").read_text())
    assert skipped[0]["path"] == "dogs/notes.jpg" and skipped[0]["reason"].startswith("unreadable")
    head = read_record("train_head", repo)
    assert head["final"]["val_accuracy"] > head["initial"]["val_accuracy"]
    assert head["model"] == {
        "total_params": 1281,
        "trainable_params": 1281,
        "non_trainable_params": 0,
        "trainable_variables": 2,
    }
    finetune = read_record("finetune", repo)
    assert finetune["model"]["total_params"] == 2257984 + 1281
    extract = read_record("extract", repo)
    assert extract["base_layers"] == 154 and extract["base_output_shape"] == [4, 4, 1280]


def test_predictions_table_and_misclassified_grid_agree_with_the_metrics(repo):
    repo, _ = repo
    evaluation = read_record("eval", repo)
    rows = list(csv.DictReader((repo / "metrics" / "predictions.csv").open()))
    assert len(rows) == evaluation["test_images"] == len(set(row["id"] for row in rows))
    correct = sum(row["true_label"] == row["predicted_label"] for row in rows)
    assert correct / len(rows) == pytest.approx(evaluation["finetuned"]["accuracy"])
    for class_name, figures in evaluation["finetuned"]["per_class"].items():
        predicted = [row for row in rows if row["predicted_label"] == class_name]
        actual = [row for row in rows if row["true_label"] == class_name]
        hits = sum(row["true_label"] == row["predicted_label"] for row in predicted)
        assert figures["precision"] == pytest.approx(hits / len(predicted))
        assert figures["recall"] == pytest.approx(hits / len(actual))
    # Each score is the model's probability of the predicted class, from the photo file itself.
    model = load_model(repo / "models" / "model.keras")
    params = yaml.safe_load((repo / "params.yaml").read_text())["data"]
    sample = rows[:16]
    images = np.stack([load_image(f"{params['path']}/{row['id']}", params["image_size"]) for row in sample])
    probabilities = 1 / (1 + np.exp(-model.predict(images, verbose=0).reshape(-1)))
    for row, probability in zip(sample, probabilities):
        assert row["predicted_label"] == ("dogs" if probability > 0.5 else "cats")
        assert float(row["score"]) == pytest.approx(max(probability, 1 - probability), abs=1e-5)
    with Image.open(repo / "plots" / "misclassified.png") as grid:
        assert grid.format == "PNG"


def test_plots_hold_every_figure_and_both_phases(repo):
    repo, _ = repo
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert set(plots["data"]) >= {
        "confusion",
        "roc",
        "precision_recall",
        "loss",
        "accuracy",
        "learning_rate",
        "plots/samples.png",
        "plots/misclassified.png",
        "plots/learning_curves.png",
        "plots/duplicates.png",
        "plots/label_issues.png",
        "reliability",
    }
    # Both phases on one axis from DVCLive's files: the head's five epochs, then fine-tuning's.
    history = plot_values(plots, "loss")
    # DVC names each line "<file>::<field>", the files' common folder (dvclive/) left out.
    lines = {point["filename::field"]: set() for point in history}
    for point in history:
        lines[point["filename::field"]].add(int(point["step"]))
    head_file, finetune_file = "train_head/plots/metrics/train_head", "finetune/plots/metrics/finetune"
    assert lines == {
        f"{head_file}/loss.tsv::loss": {1, 2, 3, 4, 5},
        f"{head_file}/val_loss.tsv::val_loss": {1, 2, 3, 4, 5},
        f"{finetune_file}/loss.tsv::loss": {6},
        f"{finetune_file}/val_loss.tsv::val_loss": {6},
    }
    for name in ("roc", "precision_recall"):
        assert {point["filename"] for point in plot_values(plots, name)} == {"head.csv", "finetuned.csv"}
    confusion = plot_values(plots, "confusion")
    assert {point["true_label"] for point in confusion} == {"cats", "dogs"}


# Coloured pixels each chart draws at least (its marks; axes and text are grey):
# a heat map fills its cells, a line chart draws its lines.
VEGA_CHARTS = {
    "confusion": 20_000,
    "roc": 1_000,
    "precision_recall": 1_000,
    "roc_per_class": 1_000,
    "precision_recall_per_class": 1_000,
    "reliability": 1_000,
    "loss": 1_000,
    "accuracy": 1_000,
    "learning_rate": 500,
}


def test_plots_pages_draw_every_chart_in_a_browser_with_the_network_off(repo, tmp_path):
    from dvc_render.html import PAGE_HTML

    from tests.browser import coloured_pixels, screenshot

    repo, _ = repo

    def drawn(*dvc_plots, size=(900, 700)):
        """`dvc plots ... -o DIR` opened offline: coloured pixels of its screenshot."""
        out = tmp_path / f"page{len(list(tmp_path.glob('page*')))}"
        run(["dvc", "plots", *dvc_plots, "-o", str(out)], repo)
        return coloured_pixels(screenshot(out / "index.html", out / "shot.png", *size))

    # An output of the evaluate stage; .dvc/config (plots.html_template) points at it.
    assert (repo / "plots" / "offline_page.html").is_file()
    for name, least in VEGA_CHARTS.items():
        assert drawn("show", name) >= least, name
    # The control: DVC's own page (Vega from a CDN) in the same browser draws nothing.
    (tmp_path / "cdn.html").write_text(PAGE_HTML)
    assert drawn("show", "roc", "--html-template", str(tmp_path / "cdn.html")) == 0
    # Whole pages: every chart, and for the diff every chart of both revisions.
    assert drawn("show", size=(1400, 1800)) >= sum(VEGA_CHARTS.values())
    assert drawn("diff", "HEAD", size=(1400, 1800)) >= sum(VEGA_CHARTS.values())


def test_exports_keep_the_models_accuracy(repo):
    repo, _ = repo
    export = read_record("export", repo)
    # Measured from the original photo files, each format through its own preprocessing:
    # within one test image of Keras (a probability at 0.5 may round either way).
    one_image = 1 / export["test_images"]
    keras_accuracy = export["keras"]["accuracy"]
    assert abs(export["saved_model"]["accuracy"] - keras_accuracy) <= one_image
    assert abs(export["tflite_float32"]["accuracy"] - keras_accuracy) <= one_image
    assert abs(export["tflite_int8"]["accuracy"] - keras_accuracy) <= 0.015
    for name in ("keras", "saved_model", "tflite_float32", "tflite_int8"):
        assert export[name]["size_bytes"] > 0 and export[name]["latency_ms"] > 0
    assert export["tflite_int8"]["size_bytes"] < export["tflite_float32"]["size_bytes"] / 2


def prepared_test_images(repo):
    with np.load(sorted((repo / "data" / "prepared").glob("test-*.npz"))[0]) as shard:
        return shard["images"][:8]


def keras_probabilities(repo, images):
    """Calibrated probabilities of the second class: the fine-tuned model's logits divided
    by the temperature that the calibrate stage saved beside it."""
    import keras

    model = keras.models.load_model(repo / "models" / "model.keras", safe_mode=True)
    temperature = json.loads((repo / "models" / "calibration.json").read_text())["temperature"]
    return 1 / (1 + np.exp(-model.predict(images, verbose=0).reshape(-1) / temperature))


def keras_novelty(repo, images):
    from transfer.inference.deployed import keras_network

    deployed = keras_network(open_bundle(repo / "models" / "model.keras"))
    return np.asarray(deployed.predict(images, verbose=0)["novelty"]).reshape(-1)


def test_saved_model_serves_photo_files_as_predict_sees_them(repo, tmp_path):
    repo, _ = repo
    photos = [sorted((repo.parent / "photos" / name).glob("*.jpg"))[:4] for name in ("cats", "dogs")]
    files = [*photos[0], *(path for path in photos[1] if path.name != "notes.jpg")]
    # A real photo stored turned a quarter, with the EXIF orientation that turns it back.
    upright = np.asarray(Image.open(files[-1]).convert("RGB"))
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(jpeg_with_orientation(np.ascontiguousarray(np.rot90(upright, 1)), 6))
    files.append(rotated)
    served = served_outputs(repo / "export" / "saved_model", files, tmp_path)
    # What predict feeds the model: Pillow's decoding, EXIF orientation, resize.
    size = yaml.safe_load((repo / "params.yaml").read_text())["data"]["image_size"]
    expected = keras_probabilities(repo, np.stack([load_image(path, size) for path in files]))
    # Pixels at most one level apart (tests/test_export.py): probabilities within 1e-2
    # (0.005 at most measured here on these photos).
    np.testing.assert_allclose(served["probability"], expected, atol=1e-2)
    assert served["label"] == ["dogs" if probability > 0.5 else "cats" for probability in expected]
    np.testing.assert_allclose(
        served["score"],
        np.maximum(served["probability"], 1 - np.array(served["probability"])),
        atol=1e-6,
    )
    # The rotated copy is served as its upright original is.
    assert served["probability"][-1] == pytest.approx(served["probability"][-2], abs=0.02)


def test_tflite_models_run_in_litert_and_in_predict(repo, tmp_path, user_cache):
    repo, _ = repo
    images = prepared_test_images(repo)
    np.save(tmp_path / "images.npy", images)
    # What a client of the file does, with LiteRT alone: its signature's named outputs.
    script = (
        "import sys, numpy as np\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "images = np.load(sys.argv[2]).astype(np.float32)\n"
        "runner = Interpreter(model_path=sys.argv[1]).get_signature_runner('serving_default')\n"
        "(name,) = runner.get_input_details()\n"
        "outputs = runner(**{name: images})\n"
        "np.savez(sys.argv[3], logits=outputs['logits'], novelty=outputs['novelty'])\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    from transfer.inference.runners import LiteRTRunner

    expected = {"float32": (keras_probabilities(repo, images), keras_novelty(repo, images))}
    int8 = LiteRTRunner(repo / "export" / "model_int8.tflite").run(images)
    expected["int8"] = (1 / (1 + np.exp(-int8["logits"].reshape(-1))), int8["novelty"].reshape(-1))
    # float32 must match Keras; int8 must give in a LiteRT-only process what export measured.
    for name, tolerance in (("float32", 1e-3), ("int8", 1e-5)):
        model = repo / "export" / f"model_{name}.tflite"
        command = [
            sys.executable,
            "-c",
            script,
            str(model),
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.npz"),
        ]
        run(command, tmp_path)
        with np.load(tmp_path / "out.npz") as out:
            probabilities = 1 / (1 + np.exp(-out["logits"].reshape(-1)))
            novelty = out["novelty"].reshape(-1)
        np.testing.assert_allclose(probabilities, expected[name][0], atol=tolerance)
        np.testing.assert_allclose(novelty, expected[name][1], atol=tolerance)

    photos = repo.parent / "photos"
    _, keras_lines = run_predict(repo / "models" / "model.keras", photos, "--runtime", "keras")
    _, tflite_lines = run_predict(repo / "export" / "model_float32.tflite", photos)
    assert [line.get("label") for line in tflite_lines] == [line.get("label") for line in keras_lines]
    assert len(keras_lines) == 302 and sum("error" in line for line in keras_lines) == 1
    # The default for a .keras file: LiteRT, from its cached conversion. Same labels on
    # the 301 photos, scores within the stated tolerance (tests/test_predict.py).
    _, litert_lines = run_predict(repo / "models" / "model.keras", photos)
    assert [line.get("label") for line in litert_lines] == [line.get("label") for line in keras_lines]
    for litert, keras_line in zip(litert_lines, keras_lines):
        assert litert.get("score", 0) == pytest.approx(keras_line.get("score", 0), abs=LITERT_TOLERANCE)
    # Converted with its calibration: keyed by the model and the files beside it.
    model = repo / "models" / "model.keras"
    assert (user_cache / f"{open_bundle(model).key}.tflite").is_file()


def test_every_format_gives_predicts_calibrated_probabilities_and_known_flags(repo, tmp_path):
    """On real photos, cats and dogs and flowers (none of the classes): the SavedModel and both
    TFLite files against `predict` on the .keras model."""
    repo, _ = repo
    photos = repo.parent / "photos"
    dogs = [path for path in sorted((photos / "dogs").glob("*.jpg")) if path.name != "notes.jpg"]
    files = [*sorted((photos / "cats").glob("*.jpg"))[-6:], *dogs[-6:]]
    files += flower_photos()[40:]
    model = repo / "models" / "model.keras"
    _, reference = run_predict(model, *files, "--runtime", "keras", code=0)
    threshold = json.loads((repo / "models" / "calibration.json").read_text())["novelty"]["threshold"]
    known = [line["known"] for line in reference]
    assert True in known and False in known  # both kinds of photo are here
    assert all(line["known"] == (line["novelty"] <= threshold) for line in reference)

    def clear_of_the_threshold(line, margin):
        return abs(line["novelty"] - threshold) > margin

    # TFLite float32, run by predict: the same numbers within LiteRT's tolerance.
    _, float32 = run_predict(repo / "export" / "model_float32.tflite", *files, code=0)
    for line, expected in zip(float32, reference):
        assert line["score"] == pytest.approx(expected["score"], abs=LITERT_TOLERANCE)
        assert line["novelty"] == pytest.approx(expected["novelty"], abs=LITERT_TOLERANCE)
        if clear_of_the_threshold(expected, LITERT_TOLERANCE):
            assert line["known"] == expected["known"]
    # The SavedModel, given the files' bytes: decoded in its graph, a level apart at most, which
    # moves a probability by up to 0.012 here (a temperature below 1 sharpens the difference).
    served = served_outputs(repo / "export" / "saved_model", files, tmp_path)
    for score, flag, novelty, expected in zip(served["score"], served["known"], served["novelty"], reference):
        assert score == pytest.approx(expected["score"], abs=2e-2)
        assert novelty == pytest.approx(expected["novelty"], abs=2e-2)
        if clear_of_the_threshold(expected, 2e-2):
            assert flag == expected["known"]
    # int8: quantized, its flags agree on most photos; export.json has its agreement on the test split.
    _, int8 = run_predict(repo / "export" / "model_int8.tflite", *files, code=0)
    agreeing = sum(line["known"] == expected["known"] for line, expected in zip(int8, reference))
    assert agreeing >= 0.85 * len(files)
    export = read_record("export", repo)
    parity = export["parity_with_keras"]
    assert parity["tflite_float32"]["known_agreement"] >= 0.99
    assert (
        parity["saved_model"]["known_agreement"] >= 0.97 and parity["tflite_int8"]["known_agreement"] >= 0.9
    )
    assert_apps_run_the_exports_as_predict_does(repo, files, threshold, tmp_path)


def run_predict(model, *arguments, code=1):
    result = run(
        [sys.executable, "-m", "transfer", "predict", str(model), *map(str, arguments)],
        PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == code, result.stderr[-2000:]  # 1: the text file named .jpg
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def test_exp_show_shows_a_running_experiments_latest_epoch(repo, tmp_path):
    repo, _ = repo
    epochs = 300  # on cached features: about 20 s of training on two cores
    with open(tmp_path / "exp.log", "w") as log:
        process = subprocess.Popen(
            ["dvc", "exp", "run", "train_head", "-S", f"train_head.epochs={epochs}"],
            cwd=repo,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        seen, deadline = [], time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            shown = exp_show_while_running(repo)
            for executor, row in experiment_rows(shown or []):
                metrics = row_metrics(row).get("dvclive/train_head/metrics.json")
                if executor and executor["state"] == "running" and metrics and "data" in metrics:
                    seen.append(metrics["data"])
        assert process.wait(timeout=60) == 0, (tmp_path / "exp.log").read_text()[-3000:]
    # An epoch of the running experiment, with every figure, before its last.
    running = [figures for figures in seen if 0 < figures["step"] < epochs]
    assert running, seen
    assert set(running[-1]["train_head"]) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert json.loads((repo / "dvclive" / "train_head" / "metrics.json").read_text())["step"] == epochs


def test_exp_show_has_a_column_per_headline_figure_only(repo):
    repo, _ = repo
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    columns = set()
    for _, row in experiment_rows(shown):
        for path, metrics in row_metrics(row).items():
            columns |= {(path, key) for key in dotted_leaves(metrics.get("data") or {})}
    # The headline figures (transfer.core.records), the two training logs' five figures and step,
    # and novelty.unknown.rejected: this project has unknown photos.
    assert len(columns) == sum(len(keys) for keys in HEADLINE.values()) + 12 <= 30
    assert ("metrics/eval.json", "head.accuracy") in columns
    assert ("metrics/eval.json", "finetuned.accuracy") in columns


def dotted_leaves(data, prefix=""):
    """Dotted names of a nested dict's leaves, as `dvc exp show` names its columns."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from dotted_leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_nothing_changed_runs_nothing_and_a_head_param_reruns_only_downstream(repo):
    repo, _ = repo
    assert stages_run(run(["dvc", "repro"], repo).stdout) == []

    set_params(repo, train_head__learning_rate=0.0005)
    # Up to evaluate (export, the last stage, is exercised by the fixture's run).
    rerun = run(["dvc", "repro", "evaluate"], repo)
    assert stages_run(rerun.stdout) == ["train_head", "finetune", "calibrate", "evaluate"]

    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    changed = diff["dvclive/train_head/metrics.json"]["train_head.val_loss"]
    assert changed["old"] != changed["new"]
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)
    learning_rate = params_diff["params.yaml"]["train_head.learning_rate"]
    assert (learning_rate["old"], learning_rate["new"]) == (0.001, 0.0005)


def test_litert_extract_and_evaluate_give_tensorflows_numbers(repo, user_cache):
    repo, _ = repo
    features = {split: np.load(repo / "data" / "features" / f"{split}_features.npy") for split in SPLITS}
    before = read_record("eval", repo)
    # extract on LiteRT: the same features within the stated tolerance (tests/test_litert.py).
    set_params(repo, extract__runtime="litert")
    assert stages_run(run(["dvc", "repro", "extract"], repo).stdout) == ["extract"]
    for split in SPLITS:
        litert = np.load(repo / "data" / "features" / f"{split}_features.npy")
        assert np.abs(litert - features[split]).max() <= FEATURE_TOLERANCE, split
    # evaluate on LiteRT, the rest as before (TensorFlow's features again: nothing downstream reruns).
    set_params(repo, extract__runtime="keras", evaluate__runtime="litert")
    ran = stages_run(run(["dvc", "repro", "evaluate"], repo).stdout)
    assert "evaluate" in ran and set(ran) <= {"extract", "evaluate"}  # extract may come from the run cache
    after = read_record("eval", repo)
    assert after["head"] == before["head"]  # the head's figures come from the features
    # The same model's logits within 1e-3: the same predictions, bar a probability at 0.5.
    assert abs(after["finetuned"]["accuracy"] - before["finetuned"]["accuracy"]) <= 1 / after["test_images"]
    assert after["finetuned"]["loss"] == pytest.approx(before["finetuned"]["loss"], abs=1e-3)
    from transfer.inference.litert import network_key

    assert (user_cache / f"{network_key(load_model(repo / 'models' / 'model.keras'))}.tflite").is_file()


def test_a_machine_that_resolves_differently_reruns_what_it_computes(repo):
    repo, _ = repo
    # oneDNN off stands in for another machine: what `auto` and the environment resolve to
    # changes, so each computing stage up to the target reruns instead of coming from the run cache.
    other = run(["dvc", "repro", "train_head"], repo, env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    ran = re.findall(r"Running stage '(\w+)'", other.stdout)
    assert sorted(ran[:2]) == ["pool", "runtime"] and ran[2:] == ["extract", "train_head"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in ("extract", "train_head", "finetune", "calibrate", "select", "evaluate", "export"):
        assert "metrics/runtime.json" in {dep["path"] for dep in lock["stages"][stage]["deps"]}, stage
        assert not {"runtime.strategy", "runtime.mixed_precision"} & set(
            lock["stages"][stage].get("params", {}).get("params.yaml", {})
        ), stage
    head = read_record("train_head", repo)
    assert head["runtime"]["onednn"] == "0" and head["runtime"]["strategy"] == "default"
    # Back on this machine's own resolution: its features come back from the run cache,
    # and the head it trains is the first run's again.
    back = run(["dvc", "repro", "train_head"], repo)
    assert "Stage 'extract' is cached" in back.stdout
    again = read_record("train_head", repo)
    assert again["runtime"]["onednn"] == "1"
    # A record is cached by DVC, not committed to git: read through DVC.
    first = json.loads(dvc.api.read("metrics/details/train_head.json", repo=str(repo), rev="HEAD"))
    assert again["final"] == first["final"]


def test_the_accuracy_levers_flow_through_the_pipeline(repo):
    repo, _ = repo
    set_params(
        repo,
        train_head__epochs=60,
        train_head__learning_rate=0.01,  # overfits 150 training images fast: early stopping stops it
        train_head__optimizer="adam",
        train_head__schedule="cosine",
        train_head__warmup_epochs=1,
        train_head__label_smoothing=0.1,
        train_head__early_stopping=2,
        finetune__epochs=2,
        finetune__augment=True,
        finetune__augment_zoom=0.1,
        finetune__augment_contrast=0.1,
        finetune__optimizer="adamw",
        finetune__early_stopping=1,
        evaluate__tta=True,
    )
    # Up to evaluate: export converts whatever finetune saved, checked in the tests above.
    rerun = run(["dvc", "repro", "evaluate"], repo)
    assert stages_run(rerun.stdout) == ["train_head", "finetune", "calibrate", "evaluate"]

    head = read_record("train_head", repo)
    assert head["epochs_run"] < 60  # stopped early
    assert head["kept_epoch"] == head["epochs_run"] - 2
    head_epochs, finetune_epochs = read_epochs("train_head", repo), read_epochs("finetune", repo)
    assert [row["epoch"] for row in head_epochs] == list(range(1, head["epochs_run"] + 1))
    # Fine-tuning continues the head's numbering.
    first = head["epochs_run"] + 1
    assert [row["epoch"] for row in finetune_epochs] == list(range(first, first + len(finetune_epochs)))
    # The logged learning rate: the warm-up's peak at the end of epoch 1, then cosine decay.
    rates = [row["lr"] for row in head_epochs]
    assert rates[0] == pytest.approx(0.01) and all(a > b for a, b in zip(rates, rates[1:]))
    evaluation = read_record("eval", repo)
    prepared = read_record("prepare", repo)
    assert evaluation["validation"]["images"] == prepared["validation"]["total"]
    assert evaluation["finetuned"]["accuracy"] >= 0.8
    # Trained with augmentation, saved without it: the model export converts is the plain one.
    assert "augmentation" not in [layer.name for layer in load_model(repo / "models" / "model.keras").layers]


def review_cards(browser):
    return browser.find_elements("css selector", "#cards .card")


def selected_key(browser):
    return browser.find_element("css selector", "#cards .card.selected").get_attribute("data-key")


def go_to_card(browser, key):
    """Arrow keys to the card, as a person moves."""
    from selenium.webdriver.common.keys import Keys

    keys = [card.get_attribute("data-key") for card in review_cards(browser)]
    body = browser.find_element("tag name", "body")
    for _ in range(keys.index(key) - keys.index(selected_key(browser))):
        body.send_keys(Keys.ARROW_RIGHT)
    assert selected_key(browser) == key
    return body


def test_review_page_relabels_drops_a_duplicate_group_and_undoes_with_the_keyboard(repo, tmp_path):
    """The real page in Chromium (network off) over this run's real lists: the copied cat in the
    dogs' folder moved to cats with one key, its duplicate group decided with one key (keep the
    original, drop the copy), that undone; each step checked in data/exclusions.csv."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import coloured_pixels, driven_browser
    from tests.review_client import review_server
    from transfer.data.exclusions import Exclusions

    repo, _ = repo
    copy, original = f"dogs/{CAT_COPY}", f"cats/{CAT_ORIGINAL}"
    exclusions = repo / "data" / "exclusions.csv"

    def written():
        return {photo: (d.action, d.reason) for photo, d in Exclusions.read(exclusions).decisions.items()}

    def wait_for(condition, what):
        WebDriverWait(browser, 30, poll_frequency=0.1).until(lambda _: condition(), what)

    with review_server(repo) as (address, _), driven_browser() as browser:
        browser.get(address)
        wait_for(lambda: browser.find_element("tag name", "body").get_attribute("data-ready"), "page ready")
        assert browser.find_element("tag name", "body").get_attribute("data-queue") == "labels"
        # Every photo on screen drawn, from the server (no network otherwise).
        images = browser.find_elements("css selector", "#cards .card img")[:4]
        wait_for(
            lambda: all(
                browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
                for image in images
            ),
            "photos drawn",
        )
        assert "No decision waits for a rerun." in browser.find_element("id", "waiting").text

        go_to_card(browser, copy).send_keys("1")  # class 1: cats
        wait_for(lambda: written() == {copy: ("cats", "")}, "the copy moved to cats")
        wait_for(
            lambda: "1 decision wait" in browser.find_element("id", "waiting").text, "one decision waits"
        )
        assert "dvc repro" in browser.find_element("id", "waiting").text
        shot = tmp_path / "review.png"
        browser.save_screenshot(str(shot))
        assert coloured_pixels(shot) > 10_000  # the photos, not a blank page
        if os.environ.get("REVIEW_SCREENSHOT"):  # the README's picture: docs/review.png
            browser.save_screenshot(os.environ["REVIEW_SCREENSHOT"])

        browser.find_element("tag name", "body").send_keys(Keys.TAB)  # the next queue: duplicates
        wait_for(
            lambda: browser.find_element("tag name", "body").get_attribute("data-queue") == "duplicates",
            "duplicates",
        )

        def members(card):
            return [image.get_attribute("alt") for image in card.find_elements("tag name", "img")]

        group = next(card for card in review_cards(browser) if copy in members(card))
        members = members(group)
        assert {copy, original} <= set(members)
        go_to_card(browser, group.get_attribute("data-key")).send_keys(str(members.index(original) + 1))
        kept = {
            original: ("keep", ""),
            **{photo: ("drop", "duplicate") for photo in members if photo != original},
        }
        wait_for(lambda: written() == kept, "the group: the original kept, the rest dropped")

        browser.find_element("tag name", "body").send_keys("u")
        wait_for(lambda: written() == {copy: ("cats", "")}, "undone: back to the copy moved to cats")
    photos = Path(yaml.safe_load((repo / "params.yaml").read_text())["data"]["path"])
    assert read_rows(exclusions)[0]["sha256"] == file_sha256(photos / copy)


def test_a_pool_is_ranked_labelled_through_the_review_and_joins_the_next_run(repo, tmp_path):
    """Unlabelled photos (cats and dogs the run never saw, and flowers): `dvc repro` ranks them;
    labels written through the review's JSON endpoint land in data/labels.csv; the next
    `dvc repro` reruns from prepare, whose record counts the new photos."""
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import driven_browser
    from tests.review_client import Client, review_server

    repo, _ = repo
    pool = tmp_path / "pool"
    pool.mkdir()
    for class_name, prefix in (("cats", "cat"), ("dogs", "dog")):
        for index in range(900, 912):
            source = SHARED_PHOTOS / "train" / class_name / f"{prefix}.{index}.jpg"
            (pool / source.name).write_bytes(source.read_bytes())
    for path in flower_photos()[:4]:
        (pool / f"flower-{path.name}").write_bytes(path.read_bytes())
    set_params(repo, data__unlabeled=str(pool), select__batch=10)
    ranked = run(["dvc", "repro", "select"], repo)
    assert stages_run(ranked.stdout) == ["prepare", "select"]  # the prepared photos unchanged
    to_label = read_rows(repo / "metrics" / "to_label.csv")
    assert len(to_label) == 10 and [int(row["rank"]) for row in to_label] == list(range(1, 11))
    unknown = read_rows(repo / "metrics" / "to_label_unknown.csv")
    assert {row["path"] for row in to_label}.isdisjoint(row["path"] for row in unknown)
    assert read_record("select", repo)["pool"] == 28

    truth = {row["path"]: "cats" if row["path"].startswith("cat.") else "dogs" for row in to_label}
    labelled = [path for path in truth if not path.startswith("flower-")][:6]
    with review_server(repo) as (address, _):
        client = Client(address)
        cards = client.json("GET", "/api/queues/to_label")["cards"]
        assert [card["key"] for card in cards] == [f"pool:{row['path']}" for row in to_label]
        # On the page, with the keyboard: the first card labelled (a flower: none of the classes), undone.
        first = to_label[0]["path"]
        key, written = (
            ("n", "drop")
            if first.startswith("flower-")
            else ({"cats": "1", "dogs": "2"}[truth[first]], truth[first])
        )
        with driven_browser() as browser:
            browser.get(address)
            wait = WebDriverWait(browser, 30, poll_frequency=0.1)
            wait.until(lambda _: browser.find_element("tag name", "body").get_attribute("data-ready"))
            browser.find_element("css selector", 'nav button[data-queue="to_label"]').click()
            wait.until(
                lambda _: browser.find_element("tag name", "body").get_attribute("data-queue") == "to_label"
            )
            browser.find_element("tag name", "body").send_keys(key)
            wait.until(
                lambda _: read_rows(repo / "data" / "labels.csv") == [{"path": first, "class": written}]
            )
            browser.find_element("tag name", "body").send_keys("u")
            wait.until(lambda _: read_rows(repo / "data" / "labels.csv") == [])
        decisions = [{"path": f"pool:{path}", "action": truth[path]} for path in labelled]
        answer = client.json("POST", "/api/decisions", {"decisions": decisions})
        assert answer["waiting"] == 6
    assert read_rows(repo / "data" / "labels.csv") == [
        {"path": path, "class": truth[path]} for path in labelled
    ]

    before = read_record("prepare", repo)
    rerun = run(["dvc", "repro", "evaluate"], repo)
    assert stages_run(rerun.stdout)[:2] == ["prepare", "extract"]
    after = read_record("prepare", repo)
    totals = [sum(record[split]["total"] for split in SPLITS) for record in (before, after)]
    assert totals[1] == totals[0] + 6
