"""The deployed model: the classifier with its temperature and novelty score inside, as
`predict` runs it (Keras and LiteRT) on a small model with real ImageNet weights."""

import json

import numpy as np
import pytest

from tests.conftest import LITERT_TOLERANCE, SHARED, predict_listing_imports, transfer_predict
from transfer.calibration.novelty import get_method
from transfer.calibration.temperature import scaled
from transfer.core.artifacts import write_calibration
from transfer.core.task import Task
from transfer.data.images import find_images, load_image
from transfer.models.networks import build_base, build_classifier, build_head

SIZE = 48
TEMPERATURE = 2.5


def pooled_features(classifier, images):
    import keras

    return keras.Model(classifier.input, classifier.get_layer("pool").output).predict(images, verbose=0)


@pytest.fixture(scope="module")
def photos(shared_photos):
    """20 cats and dogs (the classes), and 12 flowers (none of them)."""
    cats_dogs = [
        *sorted((shared_photos / "train" / "cats").glob("*.jpg"))[:10],
        *sorted((shared_photos / "train" / "dogs").glob("*.jpg"))[:10],
    ]
    flowers = sorted((SHARED / "data" / "flower_photos").rglob("*.jpg"))[::250][:12]
    return cats_dogs, flowers


@pytest.fixture(scope="module")
def calibrated_dir(tmp_path_factory, shared_weights, photos):
    """A classifier saved as finetune saves it, with a calibration beside it fitted on the
    cats and dogs; the threshold at the median novelty of all photos, so about half are unknown."""
    import keras

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("calibrated")
    classifier = build_classifier(build_base(SIZE, str(shared_weights)), build_head())
    classifier.save(folder / "model.keras")
    (folder / "classes.json").write_text(json.dumps({"class_names": ["cats", "dogs"]}))
    cats_dogs, flowers = photos
    images = np.stack([load_image(path, SIZE) for path in cats_dogs + flowers])
    features = pooled_features(classifier, images)
    settings = {"method": "knn", "accept": 0.95, "neighbours": 3, "bank_size": 100}
    statistics = get_method("knn").fit(features[:20], np.repeat([0, 1], 10), 2, settings, 0)
    # Scored on every photo, the bank's own included: the median splits them in two.
    settings["threshold"] = float(np.median(get_method("knn").scores(features, None, statistics, settings)))
    calibration = {"temperature": TEMPERATURE, "fitted_on": "validation", "novelty": settings}
    write_calibration(folder, calibration, statistics)
    return folder


def test_the_deployed_model_divides_the_logits_and_scores_novelty(calibrated_dir, photos):
    from transfer.inference.bundle import open_bundle
    from transfer.inference.deployed import keras_network
    from transfer.models.loading import load_model

    classifier = load_model(calibrated_dir / "model.keras")
    bundle = open_bundle(calibrated_dir / "model.keras")
    deployed, calibration = keras_network(bundle), bundle.calibration
    images = np.stack([load_image(path, SIZE) for path in photos[0][:4] + photos[1][:4]])
    outputs = deployed.predict(images, verbose=0)
    np.testing.assert_allclose(
        outputs["logits"], classifier.predict(images, verbose=0) / TEMPERATURE, rtol=1e-5, atol=1e-6
    )
    statistics = bundle.statistics
    settings = calibration["novelty"]
    expected = get_method("knn").scores(pooled_features(classifier, images), None, statistics, settings)
    np.testing.assert_allclose(outputs["novelty"][:, 0], expected, atol=1e-5)


def test_the_deployed_mahalanobis_score_is_numpys(calibrated_dir, photos):
    from transfer.inference.deployed import deployed_model
    from transfer.models.loading import load_model

    classifier = load_model(calibrated_dir / "model.keras")
    images = np.stack([load_image(path, SIZE) for path in photos[0] + photos[1]])
    features = pooled_features(classifier, images)
    method = get_method("mahalanobis")
    statistics = method.fit(features[:20], np.repeat([0, 1], 10), 2, {}, 0)
    calibration = {"temperature": 1.0, "novelty": {"method": "mahalanobis", "threshold": 1.0}}
    outputs = deployed_model(classifier, calibration, statistics).predict(images, verbose=0)
    expected = method.scores(features, None, statistics, {})
    np.testing.assert_allclose(outputs["novelty"][:, 0], expected, rtol=1e-4)
    # The flowers, none of the classes, lie further from both class means than any cat or dog.
    assert expected[20:].min() > expected[:20].max()


@pytest.mark.parametrize("num_classes", [2, 3])
def test_max_probability_novelty_is_one_minus_the_calibrated_top_probability(shared_weights, num_classes):
    import keras

    from transfer.inference.deployed import deployed_model

    keras.utils.set_random_seed(1)
    task = Task([f"class_{index}" for index in range(num_classes)])
    classifier = build_classifier(build_base(SIZE, str(shared_weights)), build_head(task.logit_width))
    calibration = {"temperature": 0.7, "novelty": {"method": "max_probability", "threshold": 0.3}}
    images = np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3)).astype(np.float32)
    outputs = deployed_model(classifier, calibration, {}).predict(images, verbose=0)
    probabilities = task.probabilities(scaled(classifier.predict(images, verbose=0), 0.7))
    np.testing.assert_allclose(
        outputs["novelty"][:, 0], get_method("max_probability").scores(None, probabilities), atol=1e-5
    )


@pytest.mark.parametrize("runtime", ["keras", "litert"])
def test_predict_gives_calibrated_scores_known_and_novelty(
    calibrated_dir, photos, runtime, user_cache, tmp_path
):
    from transfer.inference.bundle import open_bundle
    from transfer.inference.deployed import keras_network

    files = photos[0][::4] + photos[1][::3]
    result, lines = transfer_predict(calibrated_dir / "model.keras", *files, "--runtime", runtime)
    assert result.returncode == 0, result.stderr
    bundle = open_bundle(calibrated_dir / "model.keras")
    deployed, calibration = keras_network(bundle), bundle.calibration
    outputs = deployed.predict(np.stack([load_image(path, SIZE) for path in files]), verbose=0)
    probabilities = Task(["cats", "dogs"]).probabilities(outputs["logits"])
    threshold = calibration["novelty"]["threshold"]
    tolerance = 1e-5 if runtime == "keras" else LITERT_TOLERANCE
    for line, row, novelty in zip(lines, probabilities, outputs["novelty"][:, 0]):
        assert list(line) == ["path", "label", "score", "known", "novelty"]
        assert line["score"] == pytest.approx(row.max(), abs=tolerance)  # calibrated
        assert line["novelty"] == pytest.approx(novelty, rel=1e-4)
        if abs(novelty - threshold) > 1e-3 * threshold:
            assert line["known"] == bool(novelty <= threshold)
    assert {line["known"] for line in lines} == {True, False}


def test_reject_prints_a_null_label_for_unknown_photos_only(calibrated_dir, photos, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos[0][:6] + photos[1][:6]:
        (folder / f"{path.parent.name}_{path.name}").write_bytes(path.read_bytes())
    (folder / "z_broken.jpg").write_text("not an image")
    plain_result, plain = transfer_predict(calibrated_dir / "model.keras", folder, "--runtime", "keras")
    result, rejecting = transfer_predict(
        calibrated_dir / "model.keras", folder, "--runtime", "keras", "--reject"
    )
    assert plain_result.returncode == result.returncode == 1  # the broken file, as without --reject
    assert [line["path"] for line in rejecting] == [str(path) for path in find_images([folder])]
    for line, plain_line in zip(rejecting, plain):
        if "error" in line:
            continue
        assert line["label"] == (plain_line["label"] if plain_line["known"] else None)
        assert {key: value for key, value in line.items() if key != "label"} == {
            key: value for key, value in plain_line.items() if key != "label"
        }
    assert any(line.get("label") is None for line in rejecting)


def test_reject_without_a_calibration_is_one_clear_error(calibrated_dir, photos, tmp_path):
    for name in ("model.keras", "classes.json"):
        (tmp_path / name).write_bytes((calibrated_dir / name).read_bytes())
    result, lines = transfer_predict(tmp_path / "model.keras", photos[0][0], "--reject", "--runtime", "keras")
    assert result.returncode == 2 and lines == []
    assert result.stderr.strip().splitlines()[-1].startswith("error: --reject needs a calibrated model")
    # Without --reject an uncalibrated model still predicts, without known and novelty.
    result, lines = transfer_predict(tmp_path / "model.keras", photos[0][0], "--runtime", "keras")
    assert result.returncode == 0 and list(lines[0]) == ["path", "label", "score"]


@pytest.mark.parametrize("runtime", ["keras", "litert"])
def test_a_calibration_without_its_novelty_statistics_is_one_error_line(
    calibrated_dir, photos, tmp_path, runtime
):
    for name in ("model.keras", "classes.json", "calibration.json"):  # novelty.npz deleted
        (tmp_path / name).write_bytes((calibrated_dir / name).read_bytes())
    result, lines = transfer_predict(tmp_path / "model.keras", photos[0][0], "--runtime", runtime)
    assert result.returncode == 2 and lines == []
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'novelty.npz'} is missing: {tmp_path / 'calibration.json'} needs it "
        "(rerun the calibrate stage: dvc repro)"
    ]


def test_a_cached_conversion_runs_without_importing_tensorflow(calibrated_dir, photos, user_cache):
    image = photos[0][0]
    warm, expected = transfer_predict(calibrated_dir / "model.keras", image)  # converts (or finds it)
    assert warm.returncode == 0, warm.stderr
    assert predict_listing_imports(calibrated_dir / "model.keras", image) == (0, [], expected)


def test_a_conversion_planted_in_the_shared_temporary_folder_is_never_run(calibrated_dir, photos, tmp_path):
    """Another model's conversion, under the name this model's would have, where any local user
    can write: an empty user cache must not make predict run it."""
    from transfer.inference.bundle import open_bundle

    other = tmp_path / "other"
    other.mkdir()
    for name in ("model.keras", "classes.json"):  # the classifier without its calibration
        (other / name).write_bytes((calibrated_dir / name).read_bytes())
    planted = tmp_path / "tmp" / "transfer-litert-cache"
    planted.mkdir(parents=True)
    model = calibrated_dir / "model.keras"
    key = open_bundle(model).key
    converting, _ = transfer_predict(
        other / "model.keras", photos[0][0], env={"XDG_CACHE_HOME": str(tmp_path / "converter_cache")}
    )
    assert converting.returncode == 0, converting.stderr
    (converted,) = (tmp_path / "converter_cache" / "transfer" / "litert").glob("*.tflite")
    (planted / f"{key}.tflite").write_bytes(converted.read_bytes())

    files = photos[0][:3] + photos[1][:3]
    _, expected = transfer_predict(model, *files, "--runtime", "keras")
    env = {"TMPDIR": str(tmp_path / "tmp"), "XDG_CACHE_HOME": str(tmp_path / "empty_cache")}
    result, lines = transfer_predict(model, *files, env=env)
    assert result.returncode == 0, result.stderr
    assert [line["known"] for line in lines] == [line["known"] for line in expected]
    for line, reference in zip(lines, expected):
        assert line["label"] == reference["label"]
        assert line["score"] == pytest.approx(reference["score"], abs=LITERT_TOLERANCE)


def test_a_novelty_method_is_one_module_and_its_name(calibrated_dir, photos, monkeypatch):
    """docs/development.md's recipe: a module with fit, scores, a Keras layer and METHOD, and
    its name in the registry's list, and the deployed model computes it."""
    import sys
    import types

    import keras
    from keras import ops

    from transfer.calibration import novelty
    from transfer.inference.deployed import deployed_model
    from transfer.models.loading import load_model

    class NegativeNorm(keras.layers.Layer):
        def call(self, features):
            return -ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))

    module = types.ModuleType("transfer.calibration.novelty.negative_norm")
    module.METHOD = novelty.NoveltyMethod(
        "negative_norm",
        uses_features=True,
        fit=lambda *arguments: {},
        scores=lambda features, probabilities, statistics, settings: -np.linalg.norm(features, axis=1),
        layer=lambda statistics, settings, **options: (NegativeNorm(**options), []),
    )
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(novelty, "NAMES", (*novelty.NAMES, "negative_norm"))

    assert novelty.all_methods()[-1] is module.METHOD
    classifier = load_model(calibrated_dir / "model.keras")
    images = np.stack([load_image(path, SIZE) for path in photos[0][:3] + photos[1][:3]])
    calibration = {"temperature": 1.0, "novelty": {"method": "negative_norm", "threshold": 0.0}}
    outputs = deployed_model(classifier, calibration, {}).predict(images, verbose=0)
    expected = module.METHOD.scores(pooled_features(classifier, images), None, {}, {})
    np.testing.assert_allclose(outputs["novelty"][:, 0], expected, rtol=1e-5)
