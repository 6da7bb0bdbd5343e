"""The model as it is shipped: the fine-tuned classifier with its calibration inside.

models/model.keras is what fine-tuning made: images -> logits. The calibrate stage fits,
beside it, a temperature T and a novelty score with its threshold (transfer.calibration,
transfer.novelty). `deployed_model` joins them into one Keras network:

    image -> {"logits": logits / T, "novelty": the photo's novelty score}

so the calibrated probabilities are the Task's usual sigmoid/softmax of `logits`, and a
photo is known when novelty <= the saved threshold. `predict` runs it (in Keras, or LiteRT
from its cached conversion), and the export stage writes it as the SavedModel and both
TFLite files: every format computes the same two outputs in its own graph.
"""

import keras
from keras import layers, ops

from transfer.artifacts import DEPLOYED_OUTPUTS, read_calibration
from transfer.model import load_model
from transfer.novelty import get_method


@keras.saving.register_keras_serializable(package="transfer")
class NearestClassDistance(layers.Layer):
    """Pooled features -> the Mahalanobis distance to the nearest class mean (N, 1), from the
    whitened statistics of transfer.novelty.fit_mahalanobis (frozen weights)."""

    def __init__(self, feature_width, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.feature_width = feature_width
        self.num_classes = num_classes
        self.whitening = self.add_weight(
            shape=(feature_width, feature_width), initializer="zeros", trainable=False, name="whitening"
        )
        self.centers = self.add_weight(
            shape=(num_classes, feature_width), initializer="zeros", trainable=False, name="centers"
        )

    def call(self, features):
        whitened = ops.matmul(features, self.whitening)
        offsets = ops.expand_dims(whitened, 1) - ops.expand_dims(self.centers, 0)
        return ops.sqrt(ops.min(ops.sum(ops.square(offsets), axis=-1), axis=1, keepdims=True))

    def get_config(self):
        return {**super().get_config(), "feature_width": self.feature_width, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="transfer")
class KthNeighbourDistance(layers.Layer):
    """Pooled features -> 1 - their cosine similarity to the k-th nearest row of a bank of
    unit-length training features (N, 1): transfer.novelty.knn_scores (frozen weights)."""

    def __init__(self, bank_size, feature_width, neighbours, **kwargs):
        super().__init__(**kwargs)
        self.bank_size = bank_size
        self.feature_width = feature_width
        self.neighbours = neighbours
        self.bank = self.add_weight(
            shape=(bank_size, feature_width), initializer="zeros", trainable=False, name="bank"
        )

    def call(self, features):
        # The norm as a root of squares, not ops.norm: its MUL would share an op type with the
        # backbone's, which the int8 export keeps quantized (transfer.export.INT8_FLOAT_OPS).
        norm = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
        unit = features / ops.maximum(norm, 1e-12)
        similarities = ops.matmul(unit, ops.transpose(self.bank))
        nearest, _ = ops.top_k(similarities, k=min(self.neighbours, self.bank_size))
        return 1 - nearest[:, -1:]

    def get_config(self):
        return {
            **super().get_config(),
            "bank_size": self.bank_size,
            "feature_width": self.feature_width,
            "neighbours": self.neighbours,
        }


@keras.saving.register_keras_serializable(package="transfer")
class LeastProbableTop(layers.Layer):
    """Logits -> 1 - the largest probability (N, 1): the max_probability novelty score."""

    def call(self, logits):
        if logits.shape[-1] == 1:  # two classes: 1 - max(p, 1 - p) = sigmoid(-|z|)
            return ops.sigmoid(-ops.abs(logits))
        return 1 - ops.max(ops.softmax(logits, axis=-1), axis=-1, keepdims=True)


def novelty_layer(settings, statistics):
    """(the layer computing calibration.json's novelty method, its weights)."""
    options = {"name": "novelty", "dtype": "float32"}
    if settings["method"] == "knn":
        bank = statistics["bank"]
        return KthNeighbourDistance(*bank.shape, settings["neighbours"], **options), [bank]
    if settings["method"] == "mahalanobis":
        centers = statistics["centers"]
        layer = NearestClassDistance(centers.shape[1], centers.shape[0], **options)
        return layer, [statistics["whitening"], centers]
    return LeastProbableTop(**options), []


def deployed_model(model, calibration, statistics):
    """The classifier with its temperature and novelty score: image -> {logits, novelty}."""
    temperature = layers.Rescaling(1 / calibration["temperature"], name="temperature", dtype="float32")
    logits = temperature(model.output)
    settings = calibration["novelty"]
    layer, weights = novelty_layer(settings, statistics)
    scored = model.get_layer("pool").output if get_method(settings["method"]).uses_features else logits
    novelty = layer(scored)
    layer.set_weights(weights)
    outputs = dict(zip(DEPLOYED_OUTPUTS, (logits, novelty)))
    return keras.Model(model.input, outputs, name="deployed")


def load_deployed(model_path):
    """(Keras model, calibration): the deployed model of a .keras file with calibration.json
    beside it, or the plain classifier and None when there is none."""
    model = load_model(model_path)
    calibration, statistics = read_calibration(model_path)
    if calibration is None:
        return model, None
    return deployed_model(model, calibration, statistics), calibration
