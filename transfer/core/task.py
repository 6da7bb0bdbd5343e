"""What the classifier predicts: the one place that decides binary or K-class.

Two classes keep the tutorial's recipe: one logit, binary cross-entropy, the
second class predicted when its probability is above a threshold (0.5).
More classes: K logits, softmax cross-entropy on integer labels, the most
probable class predicted. Everything that turns logits into a decision —
training's loss and accuracy, evaluation, predict, the SavedModel's serving
function — asks a Task, so the rule is written here once.

Logits are arrays of shape (N, logit_width). NumPy only at module level:
`transfer predict` on a .tflite file never loads TensorFlow.
"""

import functools
from dataclasses import dataclass

import numpy as np

from transfer.core.errors import PipelineError

# The tutorial's decision threshold on the probability of the second class.
THRESHOLD = 0.5
# Top-k accuracy is reported when there are more classes than this.
TOP_K = 5


def sigmoid(logits):
    return 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64)))


def softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def mean_probability_logit(logits_a, logits_b):
    """The logit of the mean of two sigmoid probabilities, computed in log
    space so confident logits (|z| > 40) do not turn into infinities."""
    a, b = (np.asarray(logits, dtype=np.float64) for logits in (logits_a, logits_b))
    log_p = np.logaddexp(-np.logaddexp(0, -a), -np.logaddexp(0, -b))  # log(p_a + p_b)
    log_q = np.logaddexp(-np.logaddexp(0, a), -np.logaddexp(0, b))  # log((1 - p_a) + (1 - p_b))
    return log_p - log_q


def log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


@dataclass(frozen=True)
class Task:
    """A classification task over class_names (index i is class_names[i])."""

    class_names: tuple

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if len(self.class_names) < 2:
            raise PipelineError(f"a classifier needs at least two classes, got {len(self.class_names)}")

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def binary(self):
        return self.num_classes == 2

    @property
    def logit_width(self):
        """Dense units of the head: the tutorial's single logit for two classes."""
        return 1 if self.binary else self.num_classes

    # -- training (Keras objects; TensorFlow is imported only here) --------

    def loss(self, label_smoothing=0.0):
        import keras

        if self.binary:
            return keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=label_smoothing)
        return _sparse_categorical_crossentropy()(self.num_classes, label_smoothing=label_smoothing)

    def metrics(self):
        """Accuracy made for logits. Binary: the logit thresholded at 0 (Keras's
        plain 'accuracy' would threshold a logit at 0.5)."""
        import keras

        if self.binary:
            return [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # -- decisions (NumPy) --------------------------------------------------

    def probabilities(self, logits):
        """(N, num_classes) float64 probabilities of every class."""
        logits = np.asarray(logits, dtype=np.float64).reshape(len(logits), self.logit_width)
        if self.binary:
            positive = sigmoid(logits[:, 0])
            return np.stack([1 - positive, positive], axis=1)
        return softmax(logits)

    def predicted(self, probabilities, threshold=THRESHOLD):
        """Index of the predicted class for each row of probabilities.

        threshold applies to binary tasks only: the second class when its
        probability is above it."""
        probabilities = np.asarray(probabilities)
        if self.binary:
            return (probabilities[:, 1] > threshold).astype(np.int64)
        return np.argmax(probabilities, axis=1)

    def top(self, probabilities, k):
        """[(class name, probability), ...] of the k most probable classes (all K if k > K), per row."""
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [
            [(self.class_names[index], float(row[index])) for index in indices]
            for row, indices in zip(probabilities, order)
        ]

    def mean_logits(self, logits_a, logits_b):
        """Logits whose probabilities are the mean of two predictions' (test-time
        augmentation). K classes: the log of the mean softmax, a valid logit."""
        if self.binary:
            return mean_probability_logit(logits_a, logits_b)
        return np.logaddexp(log_softmax(logits_a), log_softmax(logits_b)) - np.log(2)

    def cross_entropy(self, labels, logits):
        """Mean cross-entropy of logits against integer labels, computed stably."""
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        logits = np.asarray(logits, dtype=np.float64).reshape(len(labels), self.logit_width)
        if self.binary:
            z, y = logits[:, 0], labels.astype(np.float64)
            return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
        return float(-np.mean(log_softmax(logits)[np.arange(len(labels)), labels]))

    # -- serving (TensorFlow graph; the same rule as probabilities/predicted) --

    def serving_outputs(self, logits):
        """label index, its probability and all probabilities, as TensorFlow ops."""
        import tensorflow as tf

        probabilities = probability_ops(logits)
        if self.binary:
            predicted = tf.cast(probabilities[:, 1] > THRESHOLD, tf.int32)
        else:
            predicted = tf.argmax(probabilities, axis=1, output_type=tf.int32)
        score = tf.gather(probabilities, predicted, axis=1, batch_dims=1)
        return predicted, score, probabilities


def probability_ops(logits):
    """`Task.probabilities` as Keras ops inside a graph (the exported files, the SavedModel):
    the softmax of K logits; two classes' one logit z is the pair (0, z), whose softmax is
    (1 - sigmoid(z), sigmoid(z)). Softmax alone, rather than a sigmoid too, so the int8
    export keeps these few op types in float32 (transfer.deploy.export.tflite)."""
    from keras import ops

    if logits.shape[-1] == 1:
        logits = ops.concatenate([ops.zeros_like(logits), logits], axis=-1)
    return ops.softmax(logits, axis=-1)


def class_weights(class_counts, mode):
    """Keras class_weight for fit, from training images per class: None for
    'none'; for 'balanced', n / (K * n_class) as scikit-learn computes it, so
    every class weighs the same in the loss."""
    if mode == "none":
        return None
    total, count = sum(class_counts), len(class_counts)
    return {index: total / (count * n) for index, n in enumerate(class_counts) if n}


@functools.cache
def _sparse_categorical_crossentropy():
    """SparseCategoricalCrossentropy with label smoothing, which Keras's lacks.

    Registered with Keras so that saved models holding it load in safe mode."""
    import keras

    @keras.saving.register_keras_serializable(package="transfer")
    class SparseCategoricalCrossentropy(keras.losses.Loss):
        def __init__(
            self, num_classes, label_smoothing=0.0, name="sparse_categorical_crossentropy", **kwargs
        ):
            super().__init__(name=name, **kwargs)
            self.num_classes = num_classes
            self.label_smoothing = label_smoothing

        def call(self, y_true, y_pred):
            labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
            targets = keras.ops.one_hot(labels, self.num_classes)
            return keras.losses.categorical_crossentropy(
                targets, y_pred, from_logits=True, label_smoothing=self.label_smoothing
            )

        def get_config(self):
            return {
                **super().get_config(),
                "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing,
            }

    return SparseCategoricalCrossentropy
