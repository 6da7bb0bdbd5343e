"""The model as it is shipped: the fine-tuned classifier with its calibration inside.

models/model.keras is what fine-tuning made: images -> logits. The calibrate stage fits,
beside it, a temperature T and a novelty score with its threshold (transfer.calibration).
`deployed_model` joins them into one Keras network:

    image -> {"logits": logits / T, "novelty": the photo's novelty score,
              "probabilities": the calibrated probabilities of every class (K wide),
              "known": 1.0 when novelty <= the saved threshold, else 0.0}

`logits` and `novelty` are what `transfer predict` reads (DEPLOYED_OUTPUTS: it computes the
probabilities and `known` from them in float64, as it always has); `probabilities` and
`known` are for an app that runs an exported file as it is (APP_OUTPUTS: MediaPipe Tasks
reads them as two classification heads, see docs/model.md). `predict` runs the network (in
Keras, or LiteRT from its cached conversion), and the export stage writes it as the
SavedModel, both TFLite files and the ONNX file: every format computes the same outputs
in its own graph.
"""

import keras
from keras import layers, ops

from transfer.calibration.novelty import get_method, is_known
from transfer.core.task import probability_ops
from transfer.inference.bundle import APP_OUTPUTS, DEPLOYED_OUTPUTS
from transfer.models.loading import load_model


def deployed_model(model, calibration, statistics):
    """The classifier with its temperature and novelty score: image -> {logits, novelty}."""
    temperature = layers.Rescaling(1 / calibration["temperature"], name="temperature", dtype="float32")
    logits = temperature(model.output)
    settings = calibration["novelty"]
    method = get_method(settings["method"])
    layer, weights = method.layer(statistics, settings, name="novelty", dtype="float32")
    novelty = layer(model.get_layer("pool").output if method.uses_features else logits)
    layer.set_weights(weights)
    probabilities = probability_ops(logits)
    known = ops.cast(is_known(novelty, settings["threshold"]), "float32")  # compared in float32
    outputs = dict(zip(DEPLOYED_OUTPUTS + APP_OUTPUTS, (logits, novelty, probabilities, known)))
    return keras.Model(model.input, outputs, name="deployed")


def keras_network(bundle):
    """The Keras network of a .keras bundle: deployed when it is calibrated, else the plain
    classifier (images -> logits)."""
    model = load_model(bundle.network)
    if bundle.calibration is None:
        return model
    return deployed_model(model, bundle.calibration, bundle.statistics)
