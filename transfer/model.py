"""The networks: MobileNetV2 base, the head, and the assembled classifier.

Every model here takes RGB images with values 0-255: the [-1, 1] scaling that
MobileNetV2 expects is a Rescaling layer inside the model, so a saved model is
self-contained and safe to load (no Lambda layers).
"""

import math
from pathlib import Path

import keras
from keras import layers

from transfer.errors import PipelineError, one_line

FEATURE_SIZE = 1280  # MobileNetV2 (alpha 1.0) bottleneck channels


def build_base(image_size, weights):
    """keras.applications.MobileNetV2 without its top, frozen.

    weights: "imagenet" (Keras downloads them once into ~/.keras/models),
    "none" (random init), or a path to an .h5 weights file.
    """
    if weights == "none":
        weights_arg = None
    elif weights == "imagenet":
        weights_arg = "imagenet"
    else:
        if not Path(weights).is_file():
            raise PipelineError(f"model.weights: no such weights file: {weights}")
        weights_arg = str(weights)
    try:
        base = keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3), include_top=False, weights=weights_arg
        )
    except Exception as error:  # download failures and bad .h5 files come as many types
        raise PipelineError(f"could not load model.weights = {weights!r}: {one_line(error)}") from None
    base.trainable = False
    return base


def build_feature_extractor(base):
    """Images (0-255) -> pooled 1280-wide bottleneck features."""
    size = base.input_shape[1]
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1, name="to_minus_one_one")(inputs)
    x = base(x, training=False)
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name="feature_extractor")


def build_head(logit_width=1, dropout=0.0):
    """Pooled features -> logits: the tutorial's Dense(1) prediction layer for two
    classes, Dense(K) for K (Task.logit_width decides)."""
    inputs = keras.Input((FEATURE_SIZE,), name="features")
    x = layers.Dropout(dropout, name="dropout")(inputs) if dropout > 0 else inputs
    outputs = layers.Dense(logit_width, name="logit")(x)
    return keras.Model(inputs, outputs, name="head")


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
    """Images (0-255) -> logits: [augmentation] -> scaling -> base -> pooling -> head."""
    size = base.input_shape[1]
    inputs = keras.Input((size, size, 3), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = layers.Rescaling(1 / 127.5, offset=-1, name="to_minus_one_one")(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = head(x)
    return keras.Model(inputs, outputs, name="classifier")


def unfreeze_top(base, fine_tune_at):
    """Make base layers from index fine_tune_at up trainable, BatchNorm excluded.

    BatchNormalization layers stay frozen (trainable = False, which in Keras 3
    also runs them in inference mode). `base(x, training=False)` alone is not
    enough: Keras 3.15 overrides it when fit() calls the outer model with
    training=True, and the moving statistics then drift.
    """
    if not 0 <= fine_tune_at <= len(base.layers):
        raise PipelineError(
            f"finetune.fine_tune_at = {fine_tune_at} is invalid: must be between 0 and "
            f"{len(base.layers)} (the base's layer count)"
        )
    base.trainable = True
    for index, layer in enumerate(base.layers):
        frozen = index < fine_tune_at or isinstance(layer, layers.BatchNormalization)
        layer.trainable = not frozen


def split_frozen_bottom(classifier, base, fine_tune_at):
    """Split a classifier at the base's layer fine_tune_at: (bottom, top).

    bottom: images -> every tensor that layers from fine_tune_at up read from
    below (with residual connections, more than one). Frozen and in inference
    mode, so its output for an image never changes: it can be computed once.
    top: those tensors -> logits, sharing the classifier's layers and weights,
    so training top trains the classifier itself.
    """
    below = {id(layer) for layer in base.layers[:fine_tune_at]}
    crossing = []
    for layer in base.layers[fine_tune_at:]:
        for tensor in layer._inbound_nodes[0].input_tensors:  # node 0: the base's own graph
            if id(tensor._keras_history.operation) in below and not any(tensor is seen for seen in crossing):
                crossing.append(tensor)
    base_bottom = keras.Model(base.input, crossing, name="frozen_bottom")
    base_top = keras.Model(crossing, base.output, name="trainable_top")

    size = base.input_shape[1]
    images = keras.Input((size, size, 3), name="image")
    x = classifier.get_layer("to_minus_one_one")(images)
    bottom = keras.Model(images, base_bottom(x), name="bottom")
    activations = [
        keras.Input(tensor.shape[1:], name=f"activation_{index}") for index, tensor in enumerate(crossing)
    ]
    x = base_top(activations)
    x = classifier.get_layer("pool")(x)
    top = keras.Model(activations, classifier.get_layer("head")(x), name="top")
    return bottom, top


def model_facts(model):
    """Parameter and variable counts, as the tutorial prints them with summary()."""
    trainable = sum(math.prod(variable.shape) for variable in model.trainable_weights)
    total = model.count_params()
    return {
        "total_params": int(total),
        "trainable_params": int(trainable),
        "non_trainable_params": int(total - trainable),
        "trainable_variables": len(model.trainable_variables),
    }


def load_model(path):
    """Load a .keras model in safe mode: no code from the file ever runs.

    Not compiled: every stage compiles what it trains for its own phase."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"model not found: {path}")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except ValueError as error:
        if "safe_mode" not in str(error):
            raise
        raise PipelineError(
            f"refusing to load {path}: it contains code (a Lambda layer), unsafe to run"
        ) from None
