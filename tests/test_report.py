"""metrics/report.md: the changed params, both models side by side, per class, figure links."""

import pytest

from tests.conftest import default_params
from transfer.config.schema import DEFAULTS
from transfer.reporting.summary import changed_params, run_report


def test_the_shipped_params_yaml_holds_the_defaults():
    assert default_params() == DEFAULTS


def test_only_changed_params_are_listed_in_file_order():
    params = default_params()
    assert changed_params(params) == []
    params["finetune"]["epochs"] = 10
    params["data"]["image_size"] = 160
    assert changed_params(params) == [("data.image_size", 100, 160), ("finetune.epochs", 2, 10)]


def metrics(accuracy, classes):
    per_class = {
        name: {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "support": 10 + index}
        for index, name in enumerate(classes)
    }
    return {
        "accuracy": accuracy,
        "balanced_accuracy": accuracy - 0.01,
        "loss": 0.3,
        "macro_f1": 0.7,
        "per_class": per_class,
    }


def test_a_k_class_report_has_both_models_side_by_side_and_a_row_per_class():
    params = default_params()
    params["data"]["tfds_name"] = "tf_flowers"
    classes = ["daisy", "roses", "tulips"]
    evaluation = {
        "head": metrics(0.8, classes),
        "finetuned": metrics(0.9, classes),
        "test_images": 33,
        "classes": 3,
        "validation": {"accuracy": 0.875},
    }
    report = run_report(params, evaluation)
    lines = report.splitlines()
    assert "| `data.tfds_name` | cats_vs_dogs | tf_flowers |" in lines
    assert "| accuracy | 0.8000 | 0.9000 |" in lines
    assert "| validation accuracy |  | 0.8750 |" in lines
    assert not any("AUC" in line for line in lines)  # K classes: no single AUC in eval.json
    assert "| roses | 0.5000 | 0.2500 | 0.3333 | 11 |" in lines
    assert "- [learning curves](../plots/learning_curves.png)" in lines
    assert lines[2] == "mobilenet_v2 at 100 px, 3 classes, 33 test images."


def test_a_run_with_the_defaults_says_so():
    evaluation = {"head": metrics(0.8, ["cat", "dog"]), "finetuned": metrics(0.9, ["cat", "dog"])}
    evaluation.update(test_images=20, classes=2)
    report = run_report(default_params(), evaluation)
    assert "None: this run has the defaults (TensorFlow's tutorial)." in report


def test_the_data_health_section_gives_the_audits_counts():
    evaluation = {"head": metrics(0.8, ["cat", "dog"]), "finetuned": metrics(0.9, ["cat", "dog"])}
    evaluation.update(test_images=20, classes=2)
    audit = {
        "classes": {"cat": 100, "dog": 80},
        "imbalance_ratio": 1.25,
        "exact_duplicate_groups": 1,
        "near_duplicate_groups": 3,
        "duplicate_photos": 5,
        "leaks": {"train_validation": 2, "train_test": 1, "validation_test": 0},
        "label_issues": 7,
        "label_issues_by_split": {"train": 5, "validation": 1, "test": 1},
        "out_of_sample_accuracy": 0.91,
        "outliers": 0,
    }
    lines = run_report(default_params(), evaluation, audit).splitlines()
    assert "## Data health (audit stage)" in lines
    assert "- Photos per class: cat 100, dog 80 (imbalance ratio 1.25)." in lines
    assert any("train-validation 2, train-test 1, validation-test 0" in line for line in lines)
    assert any(line.startswith("- Likely label errors: 7 (test split 1;") for line in lines)
    assert "data/exclusions.csv" in run_report(default_params(), evaluation, audit)
    assert "Data health" not in run_report(default_params(), evaluation)


def test_the_calibration_section_gives_ece_and_log_loss_before_and_after():
    evaluation = {"head": metrics(0.8, ["cat", "dog"]), "finetuned": metrics(0.9, ["cat", "dog"])}
    evaluation.update(test_images=20, classes=2)
    figures = {"ece_before": 0.08, "ece_after": 0.02, "log_loss_before": 0.3, "log_loss_after": 0.25}
    evaluation["calibration"] = {"temperature": 1.7, "bins": 15, "test": figures, "validation": figures}
    lines = run_report(default_params(), evaluation).splitlines()
    assert "## Calibration (fine-tuned model)" in lines
    assert "| test | 0.0800 | 0.0200 | 0.3000 | 0.2500 |" in lines
    assert any(line.startswith("Temperature 1.7000, fitted on the validation split") for line in lines)


@pytest.mark.parametrize("unknown_photos", [0, 40])
def test_the_novelty_section_gives_acceptance_and_the_unknown_photos_rejected(unknown_photos):
    evaluation = {"head": metrics(0.8, ["cat", "dog"]), "finetuned": metrics(0.9, ["cat", "dog"])}
    evaluation.update(test_images=20, classes=2)
    unknown = {"folder": "data/unknown", "photos": unknown_photos, "unreadable": 0}
    if unknown_photos:
        unknown.update(rejected=0.95, auroc_against_test=0.99)
    evaluation["novelty"] = {
        "method": "knn",
        "threshold": 0.3057,
        "accept": 0.98,
        "validation_accepted": 0.982,
        "test_accepted": 0.97,
        "unknown": unknown,
    }
    lines = run_report(default_params(), evaluation).splitlines()
    assert "## Photos of none of the classes (novelty check)" in lines
    assert "| test photos accepted | 0.9700 |" in lines
    assert any(
        "above 0.3057, the threshold set on the validation split to accept at least 98%" in line
        for line in lines
    )
    if unknown_photos:
        assert "| unknown photos rejected (40 in `data/unknown`) | 0.9500 |" in lines
    else:
        assert "| unknown photos rejected | none in `data/unknown` (evaluate.unknown_photos) |" in lines
