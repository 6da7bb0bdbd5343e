"""mahalanobis: the distance of the pooled features to the nearest class mean, with one
covariance shared by the classes (Lee et al., 2018), Ledoit-Wolf shrunk (1,280 features
from a few thousand photos would give a singular estimate). Stored whitened: `whitening` W
(W Wᵀ = Σ⁻¹) and `centers`, the class means times W: min_c ‖f W − μ_c W‖. Its size does not
grow with the training set, but it separates the flowers proxy less well than knn."""

import keras
import numpy as np
from keras import layers, ops

from transfer.calibration.novelty import NoveltyMethod
from transfer.core.errors import PipelineError


def fit(features, labels, num_classes, settings=None, seed=None):
    """{'whitening': D x D, 'centers': K x D (the class means, whitened)}, float32."""
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    missing = [index for index in range(num_classes) if not np.any(labels == index)]
    if missing:
        raise PipelineError(f"cannot fit the novelty score: no training photo of class index {missing[0]}")
    means = np.stack([features[labels == index].mean(axis=0) for index in range(num_classes)])
    covariance = LedoitWolf(assume_centered=True).fit(features - means[labels]).covariance_
    whitening = np.linalg.cholesky(np.linalg.inv(covariance))
    return {
        "whitening": whitening.astype(np.float32),
        "centers": (means @ whitening).astype(np.float32),
    }


def scores(features, probabilities, statistics, settings=None):
    """The distance of each row of features to its nearest class mean (N,)."""
    whitened = np.asarray(features, dtype=np.float64) @ statistics["whitening"].astype(np.float64)
    centers = statistics["centers"].astype(np.float64)
    squared = ((whitened[:, np.newaxis, :] - centers[np.newaxis]) ** 2).sum(axis=-1)
    return np.sqrt(squared.min(axis=1))


@keras.saving.register_keras_serializable(package="transfer")
class NearestClassDistance(layers.Layer):
    """Pooled features -> `scores` (N, 1), the whitened statistics as frozen weights."""

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


def layer(statistics, settings, **options):
    centers = statistics["centers"]
    return NearestClassDistance(centers.shape[1], centers.shape[0], **options), [
        statistics["whitening"],
        centers,
    ]


METHOD = NoveltyMethod(
    "mahalanobis",
    uses_features=True,
    fit=fit,
    scores=scores,
    layer=layer,
    float_ops=(
        "FULLY_CONNECTED",
        "SQUARED_DIFFERENCE",
        "SUB",
        "SUM",
        "SQUARE",
        "REDUCE_MIN",
        "EXPAND_DIMS",
        "SQRT",
    ),
)
