"""End to end with more than two classes: the real `dvc repro` on real flower
photos (five classes), then the same pipeline from TFDS's tf_flowers, offline
with tfds.testing.mock_data."""

import csv
import json
import math
import shutil
import sys

import numpy as np
import pytest
import yaml

from tests.conftest import (
    PROJECT_ROOT,
    SHARED,
    STAGES,
    assert_apps_run_the_exports_as_predict_does,
    new_project,
    plot_values,
    require_shared,
    run,
    served_outputs,
    stages_run,
)
from transfer.core.records import read_record
from transfer.inference.bundle import open_bundle
from transfer.models.loading import load_model

pytestmark = pytest.mark.e2e

SHARED_FLOWERS = SHARED / "data" / "flower_photos"
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
PER_CLASS = 40


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_weights):
    require_shared(SHARED_FLOWERS)
    tmp = tmp_path_factory.mktemp("e2e_k")
    photos = tmp / "photos"
    for name in FLOWERS:
        (photos / name).mkdir(parents=True)
        for path in sorted((SHARED_FLOWERS / name).glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(path, photos / name / path.name)
    repo, first = new_project(
        tmp,
        photos,
        first_run=True,
        data__image_size=128,
        data__split=[0.5, 0.2, 0.3],
        model__weights=str(shared_weights),
        train_head__epochs=40,
        train_head__learning_rate=0.003,
        train_head__optimizer="adam",
        train_head__label_smoothing=0.1,
        train_head__class_weight="balanced",
        finetune__epochs=1,
        finetune__class_weight="balanced",
        evaluate__tta=True,
        export__calibration_images=50,
        export__latency_images=3,
    )
    return repo, photos, first


def test_five_classes_run_every_stage_with_a_five_wide_head(repo):
    repo, _, first = repo
    assert stages_run(first.stdout) == STAGES
    assert load_model(repo / "models" / "head.keras").output_shape == (None, 5)
    assert load_model(repo / "models" / "model.keras").output_shape == (None, 5)
    assert json.loads((repo / "models" / "classes.json").read_text())["class_names"] == FLOWERS


def test_k_class_metrics_are_complete_and_agree_with_the_predictions(repo):
    repo, _, _ = repo
    evaluation = read_record("eval", repo)
    assert evaluation["classes"] == 5 and "threshold" not in evaluation
    for model in ("head", "finetuned"):
        figures = evaluation[model]
        for key in (
            "accuracy",
            "loss",
            "auc",
            "balanced_accuracy",
            "macro_precision",
            "macro_recall",
            "macro_f1",
        ):
            assert math.isfinite(figures[key]), key
        assert set(figures["per_class"]) == set(FLOWERS)
        assert all(
            set(row) == {"precision", "recall", "f1", "support"} for row in figures["per_class"].values()
        )
        assert figures["accuracy"] > 0.5, figures  # chance is 0.2
    rows = list(csv.DictReader((repo / "metrics" / "predictions.csv").open()))
    correct = sum(row["true_label"] == row["predicted_label"] for row in rows)
    assert correct / len(rows) == pytest.approx(evaluation["finetuned"]["accuracy"])
    supports = {name: figures["support"] for name, figures in evaluation["finetuned"]["per_class"].items()}
    assert supports == {name: sum(row["true_label"] == name for row in rows) for name in FLOWERS}


def test_k_class_plots_confusion_and_one_vs_rest_curves_per_class(repo):
    repo, _, _ = repo
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    confusion = plot_values(plots, "confusion")
    assert {point["true_label"] for point in confusion} == set(FLOWERS)
    for name in ("roc_per_class", "precision_recall_per_class"):
        assert {point["class"] for point in plot_values(plots, name)} == set(FLOWERS), name
    html = run(["dvc", "plots", "show", "-o", "dvc_plots"], repo)
    assert html.returncode == 0 and (repo / "dvc_plots" / "index.html").is_file()


def test_k_class_exports_keep_the_accuracy_and_carry_the_class_names(repo, tmp_path):
    repo, photos, _ = repo
    export = read_record("export", repo)
    keras_accuracy = export["keras"]["accuracy"]
    # The same float32 network summed in another order: probabilities within 1e-3, so only a
    # near-tie can fall the other way (one of the 58 test photos on a 2-core Intel Xeon).
    one_photo = 1 / read_record("eval", repo)["test_images"]
    assert export["parity_with_keras"]["tflite_float32"]["largest_probability_difference"] <= 1e-3
    assert abs(export["saved_model"]["accuracy"] - keras_accuracy) <= one_photo + 1e-9
    assert abs(export["tflite_float32"]["accuracy"] - keras_accuracy) <= one_photo + 1e-9
    assert abs(export["tflite_int8"]["accuracy"] - keras_accuracy) <= 0.05
    assert list(open_bundle(repo / "export" / "model_int8.tflite").class_names) == FLOWERS
    saved_classes = repo / "export" / "saved_model" / "assets.extra" / "classes.json"
    assert json.loads(saved_classes.read_text())["class_names"] == FLOWERS

    # The .tflite file alone, away from classes.json, still names the classes.
    shutil.copy(repo / "export" / "model_float32.tflite", tmp_path / "model.tflite")
    folder = photos / "tulips"
    alone = run(
        [sys.executable, "-m", "transfer", "predict", str(tmp_path / "model.tflite"), str(folder)],
        PROJECT_ROOT,
    )
    keras_model = str(repo / "models" / "model.keras")  # in Keras itself, not its LiteRT conversion
    keras_run = run(
        [sys.executable, "-m", "transfer", "predict", "--runtime", "keras", keras_model, str(folder)],
        PROJECT_ROOT,
    )
    alone_lines = [json.loads(line) for line in alone.stdout.splitlines()]
    keras_lines = [json.loads(line) for line in keras_run.stdout.splitlines()]
    assert [line["label"] for line in alone_lines] == [line["label"] for line in keras_lines]
    assert all(len(line["top"]) == 3 and line["label"] == line["top"][0][0] for line in alone_lines)
    for a, b in zip(alone_lines, keras_lines):
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_apps_run_the_k_class_exports_as_predict_does(repo, tmp_path):
    """MediaPipe Tasks on both TFLite files, ONNX Runtime on model.onnx: five classes."""
    repo, photos, _ = repo
    files = [path for name in FLOWERS for path in sorted((photos / name).iterdir())[:4]]
    files += sorted((SHARED / "data" / "cats_and_dogs_filtered" / "validation" / "cats").glob("*.jpg"))[:6]
    threshold = json.loads((repo / "models" / "calibration.json").read_text())["novelty"]["threshold"]
    assert_apps_run_the_exports_as_predict_does(repo, files, threshold, tmp_path)


def test_saved_model_serves_k_probabilities(repo):
    repo, photos, _ = repo
    files = [next((photos / name).iterdir()) for name in FLOWERS]
    served = served_outputs(repo / "export" / "saved_model", files, repo)
    assert set(served) == {"label", "score", "probabilities", "known", "novelty"}
    probabilities = np.array(served["probabilities"])
    assert probabilities.shape == (5, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert served["label"] == [FLOWERS[i] for i in probabilities.argmax(axis=1)]
    np.testing.assert_allclose(served["score"], probabilities.max(axis=1), atol=1e-6)
    threshold = json.loads((repo / "models" / "calibration.json").read_text())["novelty"]["threshold"]
    assert served["known"] == [novelty <= threshold for novelty in served["novelty"]]


SITECUSTOMIZE = """
import os
if os.environ.get("TRANSFER_TEST_TFDS_MOCK"):
    # Test only: every Python process of this run loads TFDS datasets from
    # tfds.testing.mock_data (random examples from the real feature spec).
    # The context manager is kept: once collected, it would undo the mock.
    import tensorflow_datasets as tfds
    _mock = tfds.testing.mock_data(num_examples=int(os.environ["TRANSFER_TEST_TFDS_MOCK"]))
    _mock.__enter__()
"""


def test_the_tfds_source_builds_the_same_pipeline_for_tf_flowers(repo, tmp_path):
    repo, _, _ = repo
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env_prefix = ["env", f"PYTHONPATH={tmp_path}", "TRANSFER_TEST_TFDS_MOCK=60"]
    # Up to the head: what follows is the same code the folder run above already went through.
    command = [*env_prefix, "dvc", "exp", "run", "-S", "data.source=tfds", "-S", "data.tfds_name=tf_flowers"]
    result = run([*command, "train_head"], repo)
    assert stages_run(result.stdout) == ["prepare", "extract", "train_head"]
    meta = json.loads((repo / "data" / "prepared" / "meta.json").read_text())
    assert meta["source"] == "tfds:tf_flowers"
    assert sorted(meta["class_names"]) == FLOWERS  # tf_flowers' own label order
    assert load_model(repo / "models" / "head.keras").output_shape == (None, 5)
    assert (
        json.loads((repo / "data" / "features" / "classes.json").read_text())["class_names"]
        == meta["class_names"]
    )
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["prepare"]["params"]["params.yaml"]["data.tfds_name"] == "tf_flowers"
