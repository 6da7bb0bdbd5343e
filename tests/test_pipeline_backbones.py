"""End to end with every other backbone: `dvc exp run -S model.backbone=<name>
-S model.weights=none -S data.image_size=64` runs every stage on a few real
photos, exports, and `predict` works on the exported TFLite file.

Random weights (only MobileNetV2's ImageNet file exists offline): what is tested
is that each backbone goes through the real pipeline, not its accuracy.
"""

import csv
import io
import json
import sys

import numpy as np
import pytest
import yaml

from tests.conftest import PROJECT_ROOT, STAGES, copy_shared_subset, new_project, run, stages_run
from transfer.core.records import read_record
from transfer.models.backbones import BACKBONES, DEFAULT

pytestmark = pytest.mark.e2e

# MobileNetV2 runs end to end with real weights in test_pipeline.py, EfficientNet-Lite0 (the
# project's own network, real weights from its package) here in the default test run; the
# others, with random weights, only with --slow, to keep CI under its budget (ResNet50, whose
# preprocessing is the project's own layer, takes over two minutes here; that layer's
# save/load and its equality with Keras's preprocess_input are unit-tested in
# test_backbones.py, as is every backbone's build).
OTHERS = [name for name in BACKBONES if name != DEFAULT]
IN_EVERY_RUN = {"efficientnet_lite0"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_photos):
    tmp = tmp_path_factory.mktemp("e2e_backbones")
    photos = copy_shared_subset(tmp / "photos", per_class=12)
    repo, _ = new_project(
        tmp,
        photos,
        data__split=[0.5, 0.25, 0.25],
        train_head__epochs=1,
        finetune__epochs=1,
        finetune__fine_tune_at=0.65,  # a fraction: the same depth on every backbone
        export__calibration_images=4,
        export__latency_images=1,
    )
    return repo, photos


@pytest.fixture(autouse=True)
def from_the_committed_params(repo):
    """Each backbone's experiment starts from the committed params, whichever ran before it."""
    run(["git", "checkout", "--", "params.yaml"], repo[0])


def predict_lines(model, photos):
    # A .keras file in Keras itself (not its LiteRT conversion): the reference the .tflite must meet.
    runtime = ["--runtime", "keras"] if str(model).endswith(".keras") else []
    result = run(
        [sys.executable, "-m", "transfer", "predict", *runtime, str(model), str(photos)], PROJECT_ROOT
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    "name", [name if name in IN_EVERY_RUN else pytest.param(name, marks=pytest.mark.slow) for name in OTHERS]
)
def test_each_backbone_runs_every_stage_exports_and_predicts(repo, name):
    repo, photos = repo
    # Random weights, but real ones where they come installed (EfficientNet-Lite0's package).
    weights = "imagenet" if BACKBONES[name].weights_package else "none"
    command = ["dvc", "exp", "run", "-S", f"model.backbone={name}", "-S", f"model.weights={weights}"]
    result = run([*command, "-S", "data.image_size=64"], repo)
    assert set(STAGES) - {"prepare"} <= set(stages_run(result.stdout))

    backbone = BACKBONES[name]
    extract = read_record("extract", repo)
    assert (extract["backbone"], extract["base_layers"], extract["feature_width"]) == (
        name,
        backbone.layers,
        backbone.feature_width,
    )
    facts = read_record("finetune", repo)["model"]
    assert facts["backbone"] == name and facts["base_layers"] == backbone.layers
    assert yaml.safe_load((repo / "params.yaml").read_text())["model"]["backbone"] == name

    # The TFLite file holds the backbone's preprocessing: it takes the photos as they are
    # and agrees with the Keras model.
    keras_lines = predict_lines(repo / "models" / "model.keras", photos)
    tflite_lines = predict_lines(repo / "export" / "model_float32.tflite", photos)
    assert len(tflite_lines) == 24 and {line["label"] for line in tflite_lines} <= {"cats", "dogs"}
    np.testing.assert_allclose(dog_probabilities(tflite_lines), dog_probabilities(keras_lines), atol=1e-3)


def dog_probabilities(lines):
    return [line["score"] if line["label"] == "dogs" else 1 - line["score"] for line in lines]


@pytest.mark.slow  # needs the experiments of several backbones
def test_dvc_exp_show_sorts_runs_by_backbone(repo):
    repo, _ = repo
    shown = run(
        ["dvc", "exp", "show", "--csv", "--sort-by", "params.yaml:model.backbone", "--sort-order", "asc"],
        repo,
    )
    rows = [row for row in csv.DictReader(io.StringIO(shown.stdout)) if row["Experiment"]]
    # No metric shares the param's name any more (the model facts are details), so DVC names
    # the column without its file.
    assert [row["model.backbone"] for row in rows] == sorted(OTHERS)
