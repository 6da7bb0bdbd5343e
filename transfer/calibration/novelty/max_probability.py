"""max_probability: 1 − the largest calibrated probability (Hendrycks and Gimpel, 2017).
Needs nothing beyond the logits, but for two classes a photo of neither is often
confidently one of them: it rejects far fewer."""

import keras
import numpy as np
from keras import layers, ops

from transfer.calibration.novelty import NoveltyMethod


def fit(features, labels, num_classes, settings=None, seed=None):
    return {}


def scores(features, probabilities, statistics=None, settings=None):
    return 1 - np.asarray(probabilities, dtype=np.float64).max(axis=1)


@keras.saving.register_keras_serializable(package="transfer")
class LeastProbableTop(layers.Layer):
    """Calibrated logits -> `scores` (N, 1)."""

    def call(self, logits):
        if logits.shape[-1] == 1:  # two classes: 1 - max(p, 1 - p) = sigmoid(-|z|)
            return ops.sigmoid(-ops.abs(logits))
        return 1 - ops.max(ops.softmax(logits, axis=-1), axis=-1, keepdims=True)


def layer(statistics, settings, **options):
    return LeastProbableTop(**options), []


METHOD = NoveltyMethod("max_probability", uses_features=False, fit=fit, scores=scores, layer=layer)
