import keras
import numpy as np
import pytest

from tests.conftest import BINARY
from transfer.core.errors import PipelineError
from transfer.core.task import Task, class_weights, mean_probability_logit, sigmoid

FIVE = Task(["daisy", "dandelion", "roses", "sunflowers", "tulips"])


def test_two_classes_keep_the_tutorials_single_logit_and_threshold():
    assert BINARY.binary and BINARY.logit_width == 1
    probabilities = BINARY.probabilities(np.array([[2.0], [-1.0], [0.0]]))
    np.testing.assert_allclose(probabilities[:, 1], sigmoid([2.0, -1.0, 0.0]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1)
    # A probability of exactly 0.5 is not above the threshold: the first class.
    assert BINARY.predicted(probabilities).tolist() == [1, 0, 0]
    assert BINARY.predicted(probabilities, threshold=0.1).tolist() == [1, 1, 1]


def test_k_classes_get_k_logits_softmax_and_argmax():
    assert not FIVE.binary and FIVE.logit_width == 5
    logits = np.array([[0.0, 3.0, 1.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0, 6.0]])
    probabilities = FIVE.probabilities(logits)
    np.testing.assert_allclose(probabilities, keras.ops.softmax(logits).numpy(), rtol=1e-6)
    assert FIVE.predicted(probabilities).tolist() == [1, 4]
    top = FIVE.top(probabilities, 2)
    assert [name for name, _ in top[0]] == ["dandelion", "roses"]
    assert top[1][0][1] == pytest.approx(probabilities[1, 4])


def test_fewer_than_two_classes_is_an_error():
    with pytest.raises(PipelineError, match="at least two classes"):
        Task(["only"])


@pytest.mark.parametrize("task", [BINARY, FIVE], ids=["binary", "five"])
def test_numpy_cross_entropy_equals_the_keras_loss_it_trains_with(task):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, task.num_classes, 64)
    logits = rng.normal(scale=3, size=(64, task.logit_width))
    keras_loss = float(task.loss()(labels.astype("float32"), logits.astype("float32")))
    assert task.cross_entropy(labels, logits) == pytest.approx(keras_loss, rel=1e-5)


def test_k_class_label_smoothing_is_categorical_cross_entropy_on_smoothed_targets():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 32)
    logits = rng.normal(size=(32, 5)).astype("float32")
    smoothed = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    expected = float(smoothed(np.eye(5)[labels], logits))
    assert float(FIVE.loss(0.2)(labels.astype("float32"), logits)) == pytest.approx(expected, rel=1e-6)
    assert float(FIVE.loss(0.2)(labels.astype("float32"), logits)) != pytest.approx(
        float(FIVE.loss(0.0)(labels.astype("float32"), logits))
    )


@pytest.mark.parametrize("task", [BINARY, FIVE], ids=["binary", "five"])
def test_accuracy_metric_agrees_with_the_predicted_class(task):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, task.num_classes, 100)
    logits = rng.normal(size=(100, task.logit_width)).astype("float32")
    (metric,) = task.metrics()
    metric.update_state(labels.astype("float32"), logits)
    expected = np.mean(task.predicted(task.probabilities(logits)) == labels)
    assert float(metric.result()) == pytest.approx(expected)


@pytest.mark.parametrize("task", [BINARY, FIVE], ids=["binary", "five"])
def test_serving_graph_decides_as_the_numpy_rule(task):
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2, size=(50, task.logit_width)).astype("float32")
    logits[0] = 0.0  # the binary tie: probability 0.5 exactly
    predicted, score, probabilities = (tensor.numpy() for tensor in task.serving_outputs(logits))
    expected = task.probabilities(logits)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert predicted.tolist() == task.predicted(expected).tolist()
    np.testing.assert_allclose(score, expected[np.arange(50), predicted], atol=1e-6)


def test_mean_logits_average_probabilities_for_k_classes():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    mean = (FIVE.probabilities(a) + FIVE.probabilities(b)) / 2
    np.testing.assert_allclose(FIVE.probabilities(FIVE.mean_logits(a, b)), mean)


def test_mean_probability_logit_is_the_logit_of_the_mean_probability():
    a, b = np.array([0.5, -2.0, 3.0]), np.array([1.5, 1.0, 3.0])
    mean = (sigmoid(a) + sigmoid(b)) / 2
    np.testing.assert_allclose(mean_probability_logit(a, b), np.log(mean / (1 - mean)))
    np.testing.assert_allclose(BINARY.mean_logits(a[:, None], b[:, None])[:, 0], np.log(mean / (1 - mean)))


def test_mean_probability_logit_stays_finite_for_confident_logits():
    logits = mean_probability_logit([100.0, -100.0, 100.0], [120.0, -90.0, -100.0])
    assert np.all(np.isfinite(logits))
    assert logits[0] > 90 and logits[1] < -80 and logits[2] == pytest.approx(0.0)


def test_balanced_class_weights_make_every_class_weigh_the_same():
    counts = [10, 30, 60]
    weights = class_weights(counts, "balanced")
    assert weights == pytest.approx({0: 100 / 30, 1: 100 / 90, 2: 100 / 180})
    assert [weights[index] * count for index, count in enumerate(counts)] == pytest.approx([100 / 3] * 3)
    assert class_weights(counts, "none") is None
