"""The model as it is shipped: the fine-tuned classifier with its calibration inside.

models/model.keras is what fine-tuning made: images -> logits. The calibrate stage fits,
beside it, a temperature T and a novelty score with its threshold (transfer.calibration).
`deployed_model` joins them into one Keras network:

    image -> {"logits": logits / T, "novelty": the photo's novelty score}

so the calibrated probabilities are the Task's usual sigmoid/softmax of `logits`, and a
photo is known when novelty <= the saved threshold. `predict` runs it (in Keras, or LiteRT
from its cached conversion), and the export stage writes it as the SavedModel and both
TFLite files: every format computes the same two outputs in its own graph.
"""

import keras
from keras import layers

from transfer.calibration.novelty import get_method
from transfer.inference.bundle import DEPLOYED_OUTPUTS
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
    outputs = dict(zip(DEPLOYED_OUTPUTS, (logits, novelty)))
    return keras.Model(model.input, outputs, name="deployed")


def keras_network(bundle):
    """The Keras network of a .keras bundle: deployed when it is calibrated, else the plain
    classifier (images -> logits)."""
    model = load_model(bundle.network)
    if bundle.calibration is None:
        return model
    return deployed_model(model, bundle.calibration, bundle.statistics)
