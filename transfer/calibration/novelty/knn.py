"""knn (the default): 1 − the cosine similarity of a photo's pooled features to its k-th
nearest training photo (Sun et al., 2022). Stored as `bank`, the unit-length features of up
to calibrate.bank_size training photos; the score is a matrix product and a top-k, the same
arithmetic in NumPy, Keras, the SavedModel and TFLite."""

import keras
import numpy as np
from keras import layers, ops

from transfer.calibration.novelty import NoveltyMethod
from transfer.data.neighbours import unit_rows


def fit(features, labels, num_classes, settings, seed):
    """{'bank': the unit-length features of at most settings['bank_size'] training photos (a
    seeded random choice when there are more), float32}."""
    features = np.asarray(features)
    if len(features) > settings["bank_size"]:
        chosen = np.random.default_rng(seed).choice(len(features), settings["bank_size"], replace=False)
        features = features[np.sort(chosen)]
    return {"bank": unit_rows(features)}


def scores(features, probabilities, statistics, settings):
    """1 - the cosine similarity of each row of features to its k-th nearest bank row (N,)."""
    bank = statistics["bank"].astype(np.float64)
    similarities = unit_rows(features).astype(np.float64) @ bank.T
    k = min(settings["neighbours"], len(bank))
    return 1 - np.partition(similarities, len(bank) - k, axis=1)[:, len(bank) - k]


@keras.saving.register_keras_serializable(package="transfer")
class KthNeighbourDistance(layers.Layer):
    """Pooled features -> `scores` (N, 1), the bank as frozen weights."""

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
        # backbone's, which the int8 export keeps quantized (see float_ops below).
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


def layer(statistics, settings, **options):
    bank = statistics["bank"]
    return KthNeighbourDistance(*bank.shape, settings["neighbours"], **options), [bank]


METHOD = NoveltyMethod(
    "knn",
    uses_features=True,
    fit=fit,
    scores=scores,
    layer=layer,
    keys=("neighbours", "bank_size"),
    float_ops=(
        "FULLY_CONNECTED",
        "SQUARE",
        "SUM",
        "SQRT",
        "MAXIMUM",
        "DIV",
        "TOPK_V2",
        "STRIDED_SLICE",
        "SUB",
    ),
)
