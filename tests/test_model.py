import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import BINARY, FEATURE_SIZE, PROJECT_ROOT
from transfer.core.errors import PipelineError
from transfer.models.loading import load_model
from transfer.models.networks import (
    build_augmentation,
    build_base,
    build_classifier,
    build_feature_extractor,
    build_head,
    split_frozen_bottom,
    unfreeze_top,
)
from transfer.training.recipe import compile_model, seed_everything

SIZE = 32


def random_images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, SIZE, SIZE, 3)).astype("float32")


def batch_norm_statistics(model):
    return [
        variable.numpy().copy()
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for variable in (layer.moving_mean, layer.moving_variance)
    ]


def test_feature_extractor_gives_pooled_1280_features():
    extractor = build_feature_extractor(build_base(SIZE, "none"))
    assert extractor.predict(random_images(3), verbose=0).shape == (3, FEATURE_SIZE)


def test_classifier_is_base_plus_head_and_scales_inputs_itself():
    seed_everything(0)
    base, head = build_base(SIZE, "none"), build_head()
    classifier = build_classifier(base, head)
    images = random_images(4)
    features = build_feature_extractor(base).predict(images, verbose=0)
    np.testing.assert_allclose(
        classifier.predict(images, verbose=0), head.predict(features, verbose=0), rtol=1e-5, atol=1e-5
    )


def test_head_dropout_is_optional():
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in build_head(dropout=0.0).layers)
    assert any(
        layer.rate == 0.3
        for layer in build_head(dropout=0.3).layers
        if isinstance(layer, keras.layers.Dropout)
    )


def test_unfreeze_top_trains_only_the_top_and_never_batch_norm():
    base = build_base(SIZE, "none")
    unfreeze_top(base, 100)
    for index, layer in enumerate(base.layers):
        if isinstance(layer, keras.layers.BatchNormalization) or index < 100:
            assert not layer.trainable, layer.name
    assert any(layer.trainable for layer in base.layers[100:])
    trainable = {id(variable) for variable in base.trainable_variables}
    assert trainable == {
        id(v) for layer in base.layers[100:] if layer.trainable for v in layer.trainable_weights
    }


@pytest.mark.parametrize("fine_tune_at", [-1, 155, 1000, 1.0])
def test_fine_tune_at_outside_the_base_is_an_error(fine_tune_at):
    with pytest.raises(
        PipelineError,
        match=f"fine_tune_at = {fine_tune_at} is invalid: must be an integer layer index from 0 to 154",
    ):
        unfreeze_top(build_base(SIZE, "none"), fine_tune_at)


def test_fine_tune_at_the_layer_count_trains_the_head_alone():
    base = build_base(SIZE, "none")
    unfreeze_top(base, 154)
    assert not base.trainable_variables
    model = build_classifier(base, build_head())
    bottom, top = split_frozen_bottom(model, base, 154)
    assert len(top.trainable_variables) == 2  # the head's kernel and bias
    images = random_images(2)
    np.testing.assert_allclose(top(bottom(images)), model(images), atol=1e-6)


def fine_tune_once(weights, freeze_batch_norm):
    # Real weights: with random ones the activations vanish and nothing trains.
    seed_everything(0)
    base = build_base(SIZE, str(weights))
    unfreeze_top(base, 100)
    if not freeze_batch_norm:  # what the tutorial's code does on Keras 3.15
        for layer in base.layers[100:]:
            layer.trainable = True
    model = build_classifier(base, build_head())
    compile_model(model, BINARY, 1e-3)
    before_statistics = batch_norm_statistics(base)
    before_kernel = base.get_layer("Conv_1").kernel.numpy().copy()
    model.fit(random_images(16), np.arange(16) % 2, batch_size=8, epochs=1, verbose=0)
    changed = [not np.array_equal(a, b) for a, b in zip(before_statistics, batch_norm_statistics(base))]
    return changed, not np.array_equal(before_kernel, base.get_layer("Conv_1").kernel.numpy())


def test_fine_tuning_leaves_every_batch_norm_statistic_unchanged(shared_weights):
    changed, kernel_trained = fine_tune_once(shared_weights, freeze_batch_norm=True)
    assert kernel_trained
    assert not any(changed)


def test_fine_tuning_is_deterministic_on_cpu(shared_weights):
    def weights_after_fine_tuning():
        seed_everything(3)
        base = build_base(SIZE, str(shared_weights))
        unfreeze_top(base, 100)
        model = build_classifier(base, build_head(dropout=0.2), build_augmentation(3))
        compile_model(model, BINARY, 1e-3)
        model.fit(random_images(16), np.arange(16) % 2, batch_size=8, epochs=2, verbose=0)
        return model.get_weights()

    for a, b in zip(weights_after_fine_tuning(), weights_after_fine_tuning()):
        np.testing.assert_array_equal(a, b)


def test_base_called_with_training_false_alone_does_not_freeze_batch_norm(shared_weights):
    # Why unfreeze_top sets BatchNormalization layers untrainable: Keras 3.15
    # overrides the base(x, training=False) recorded in the functional model.
    changed, _ = fine_tune_once(shared_weights, freeze_batch_norm=False)
    assert any(changed)


@pytest.mark.parametrize(
    "lever",
    [
        {},  # the tutorial's: flip and rotation 0.2
        {"rotation": 0.0},  # flip alone
        {"flip": False, "rotation": 0.1},
        {"flip": False, "rotation": 0.0, "zoom": 0.3},
        {"flip": False, "rotation": 0.0, "contrast": 0.5},
    ],
)
def test_each_augmentation_changes_training_inputs_only(lever):
    augmentation = build_augmentation(seed=0, **lever)
    images = random_images(4)
    assert not np.allclose(augmentation(images, training=True), images)
    np.testing.assert_array_equal(augmentation(images, training=False), images)


def test_augmentation_with_every_change_off_is_none():
    assert build_augmentation(0, flip=False, rotation=0.0, zoom=0.0, contrast=0.0) is None


def test_an_augmented_classifier_predicts_as_the_plain_one():
    base, head = build_base(SIZE, "none"), build_head()
    augmented = build_classifier(base, head, build_augmentation(0, zoom=0.2, contrast=0.2))
    plain = build_classifier(base, head)
    images = random_images(3)
    np.testing.assert_array_equal(augmented.predict(images, verbose=0), plain.predict(images, verbose=0))


def test_saved_model_loads_in_safe_mode_with_identical_predictions(tmp_path):
    model = build_classifier(build_base(SIZE, "none"), build_head(dropout=0.2), build_augmentation(0))
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    images = random_images(3)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_a_model_file_carrying_code_is_refused(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x + 1)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(PipelineError, match="refusing to load .*lambda.keras: it contains code"):
        load_model(tmp_path / "lambda.keras")


def test_missing_model_and_weights_are_clear_errors(tmp_path):
    with pytest.raises(PipelineError, match="model not found"):
        load_model(tmp_path / "none.keras")
    with pytest.raises(PipelineError, match="model.weights: no such weights file: .*missing.h5"):
        build_base(SIZE, str(tmp_path / "missing.h5"))


def test_a_file_that_is_not_weights_is_a_clear_error(tmp_path):
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(PipelineError, match="could not load model.weights"):
        build_base(SIZE, str(tmp_path / "bad.h5"))


def test_shared_imagenet_weights_load_from_a_path(shared_weights):
    base = build_base(96, str(shared_weights))
    reference = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    reference.load_weights(shared_weights)
    for ours, theirs in zip(base.weights, reference.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_imagenet_weights_come_through_keras_download_cache(shared_weights, tmp_path):
    # The real `weights: imagenet` code path, offline: Keras finds the file in
    # its cache under the name it would download, so it never goes to the network.
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    shutil.copy(shared_weights, cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5")
    script = (
        "import transfer, numpy as np, keras\n"
        "from transfer.models.networks import build_base\n"
        "base = build_base(96, 'imagenet')\n"
        f"reference = build_base(96, '{shared_weights}')\n"
        "assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(base.weights, reference.weights))\n"
        "print('same weights')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**__import__("os").environ, "KERAS_HOME": str(tmp_path / "keras_home")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "same weights" in result.stdout
