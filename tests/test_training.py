import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import BINARY, FEATURE_SIZE
from transfer.config import schema as params
from transfer.core.task import Task
from transfer.models.networks import build_head
from transfer.training import recipe as training
from transfer.training.datasets import feature_dataset
from transfer.training.recipe import (
    compile_model,
    evaluate,
    fit,
    kept_epoch,
    learning_rate_schedule,
    phase_report,
    seed_everything,
)


def separable_features(count, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 2).astype("float32")
    features = rng.normal(size=(count, FEATURE_SIZE)).astype("float32")
    features[:, :10] += (labels[:, None] * 2 - 1) * 3.0  # the class shifts ten features
    return features, labels


def train_head(seed, epochs=3):
    seed_everything(seed)
    features, labels = separable_features(200)
    head = build_head(dropout=0.2)
    compile_model(head, BINARY, 1e-2)
    train = feature_dataset(features, labels, 32, shuffle_buffer=100, seed=seed)
    validation = feature_dataset(*separable_features(100, seed=1), 32)
    initial = evaluate(head, validation)
    history = fit(head, train, validation, first_epoch=0, epochs=epochs)
    return head, initial, history


def test_accuracy_thresholds_logits_at_zero():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Identity()])
    compile_model(model, BINARY, 1e-3)
    logits = np.array([[0.2], [-0.2], [0.3], [-0.4]], "float32")  # all on the correct side of 0
    result = model.evaluate(logits, np.array([1, 0, 1, 0], "float32"), verbose=0, return_dict=True)
    assert result["accuracy"] == 1.0


def test_head_learns_and_history_rows_are_numbered_per_epoch():
    _, initial, history = train_head(seed=0)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["val_accuracy"] > 0.9 > initial["accuracy"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_epochs_continue_after_the_first_phase():
    seed_everything(0)
    head = build_head()
    compile_model(head, BINARY, 1e-3)
    data = feature_dataset(*separable_features(64), 32)
    rows = fit(head, data, data, first_epoch=10, epochs=2)
    assert [row["epoch"] for row in rows] == [11, 12]


def test_same_seed_same_weights_and_metrics():
    first, _, first_history = train_head(seed=7)
    second, _, second_history = train_head(seed=7)
    other, _, _ = train_head(seed=8)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first_history == second_history
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_optimizer_names_in_params_are_the_optimizers_training_builds():
    assert tuple(training.OPTIMIZERS) == params.OPTIMIZERS
    for name, optimizer_class in training.OPTIMIZERS.items():
        model = build_head()
        compile_model(model, BINARY, 1e-3, optimizer=name)
        assert type(model.optimizer) is optimizer_class


def test_constant_learning_rate_without_warm_up_is_the_tutorials_plain_float():
    assert learning_rate_schedule(1e-4, "constant", 0, epochs=5, steps_per_epoch=10) == 1e-4


@pytest.mark.parametrize(
    "schedule, expected_at_end",
    [("cosine", 0.0), ("constant", 1e-3)],
)
def test_warm_up_ramps_from_zero_then_the_schedule_holds_or_decays(schedule, expected_at_end):
    rate = learning_rate_schedule(1e-3, schedule, 2, epochs=6, steps_per_epoch=10)
    at = {step: float(rate(step)) for step in (0, 10, 20, 40, 60)}
    assert at[0] == 0.0
    assert at[10] == pytest.approx(0.5e-3)  # halfway through 2 warm-up epochs
    assert at[20] == pytest.approx(1e-3)  # the peak, when warm-up ends
    assert at[60] == pytest.approx(expected_at_end, abs=1e-9)  # after the last epoch
    if schedule == "cosine":
        assert at[40] == pytest.approx(0.5e-3)  # halfway through the decay


def test_training_steps_the_schedule_it_was_given():
    seed_everything(0)
    features, labels = separable_features(64)
    head = build_head()
    train = feature_dataset(features, labels, 16)
    rate = learning_rate_schedule(1e-2, "cosine", 1, epochs=3, steps_per_epoch=4)
    compile_model(head, BINARY, rate)
    fit(head, train, train, 0, 3)
    assert int(head.optimizer.iterations) == 12
    assert float(head.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed to 0


def test_label_smoothing_bounds_the_logits():
    # Smoothed targets s/2 and 1 - s/2 are met at logit +-log((2 - s) / s): the
    # typical logit settles there; unsmoothed, logits keep growing.
    def typical_logit(label_smoothing):
        seed_everything(0)
        features, labels = separable_features(200)
        head = build_head()
        compile_model(head, BINARY, 1e-2, optimizer="adam", label_smoothing=label_smoothing)
        head.fit(features, labels, batch_size=32, epochs=60, verbose=0)
        return float(np.median(np.abs(head.predict(features, verbose=0))))

    assert typical_logit(0.2) == pytest.approx(np.log(1.8 / 0.2), abs=0.3)
    assert typical_logit(0.0) > 2 * np.log(1.8 / 0.2)


def test_early_stopping_stops_and_restores_the_epoch_of_lowest_validation_loss():
    # Validation labels are the opposite of training labels, so validation loss
    # is lowest early and grows with every epoch of training.
    seed_everything(0)
    features, labels = separable_features(200)
    head = build_head()
    compile_model(head, BINARY, 1e-3)
    train = feature_dataset(features, labels, 32)
    validation = feature_dataset(features[:100], 1 - labels[:100], 32)
    rows = fit(head, train, validation, 0, 20, early_stopping=2)
    kept = kept_epoch(rows, early_stopping=2)

    assert len(rows) == kept["epoch"] + 2 < 20  # stopped two epochs after the best
    assert kept["val_loss"] == min(row["val_loss"] for row in rows) < rows[-1]["val_loss"]
    assert evaluate(head, validation)["loss"] == pytest.approx(kept["val_loss"], rel=1e-5)
    report = phase_report(rows, 2, {})
    assert (report["kept_epoch"], report["epochs_run"]) == (kept["epoch"], len(rows))
    assert report["final"]["val_loss"] == kept["val_loss"]


def test_without_early_stopping_the_last_epoch_is_kept():
    rows = [{"epoch": 1, "val_loss": 0.1}, {"epoch": 2, "val_loss": 0.5}]
    assert kept_epoch(rows, early_stopping=0)["epoch"] == 2


def test_a_swallowed_interrupt_still_stops_training(monkeypatch):
    monkeypatch.setattr(training, "interrupted", lambda: True)
    head = build_head()
    compile_model(head, BINARY, 1e-3)
    data = feature_dataset(*separable_features(64), 32)
    with pytest.raises(KeyboardInterrupt):
        fit(head, data, data, 0, 2)


@pytest.mark.parametrize("fine_tune_at", [100, 120])  # two tensors cross the cut at 100, one at 120
def test_training_on_the_cached_bottom_gives_the_same_model(tmp_path, shared_weights, fine_tune_at):
    from tests.conftest import BINARY, default_params, make_image_folder
    from transfer.data.sources.folder import prepare_folder
    from transfer.models.networks import build_base, build_classifier, unfreeze_top
    from transfer.training.fine_tuning import fine_tune

    root = make_image_folder(tmp_path / "images", per_class=20)
    prepare_folder(root, tmp_path / "prepared", 48, [0.6, 0.2, 0.2], seed=0)

    def fine_tuned(cache_bottom):
        seed_everything(1)
        base = build_base(48, str(shared_weights))
        unfreeze_top(base, fine_tune_at)
        model = build_classifier(base, build_head(dropout=0.2))
        phase_params = dict(
            default_params()["finetune"], fine_tune_at=fine_tune_at, batch_size=8, shuffle_buffer=100
        )
        history = fine_tune(
            model,
            base,
            BINARY,
            tmp_path / "prepared",
            phase_params,
            seed=1,
            first_epoch=2,
            cache_bottom=cache_bottom,
            inference_batch_size=16,
        )
        return model.get_weights(), history

    cached_weights, cached_history = fine_tuned(cache_bottom=True)
    full_weights, full_history = fine_tuned(cache_bottom=False)
    assert [row["epoch"] for row in cached_history] == [3, 4]
    initial = weights_before_training(shared_weights)
    assert any(not np.array_equal(a, b) for a, b in zip(cached_weights, initial))
    for cached, full in zip(cached_weights, full_weights):
        np.testing.assert_allclose(cached, full, rtol=0, atol=1e-6)  # float noise: seen 1.2e-7
    for cached, full in zip(cached_history, full_history):
        assert cached["loss"] == pytest.approx(full["loss"], rel=1e-5)


def weights_before_training(shared_weights):
    from transfer.models.networks import build_base, build_classifier

    seed_everything(1)
    return build_classifier(build_base(48, str(shared_weights)), build_head(dropout=0.2)).get_weights()


THREE = Task(["a", "b", "c"])


def three_class_features(counts, seed=0):
    """Features where class c shifts ten features of its own; counts images per class."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(count, index) for index, count in enumerate(counts)]).astype("float32")
    features = rng.normal(size=(len(labels), FEATURE_SIZE)).astype("float32")
    for index in range(len(counts)):
        features[labels == index, 10 * index : 10 * index + 10] += 1.5
    return features, labels


def test_a_k_class_head_learns_with_k_logits():
    seed_everything(0)
    features, labels = three_class_features([60, 60, 60])
    head = build_head(THREE.logit_width)
    compile_model(head, THREE, 1e-2, optimizer="adam")
    data = feature_dataset(features, labels, 32, shuffle_buffer=200, seed=0)
    rows = fit(head, data, data, 0, 5)
    assert head.output_shape == (None, 3)
    assert rows[-1]["accuracy"] > 0.9 and rows[-1]["loss"] < rows[0]["loss"]
    predicted = THREE.predicted(THREE.probabilities(head.predict(features, verbose=0)))
    assert np.mean(predicted == labels) == pytest.approx(evaluate(head, data)["accuracy"], abs=1e-6)


def test_balanced_class_weight_raises_the_rare_class_recall():
    from transfer.core.task import class_weights

    def rare_class_recall(mode):
        seed_everything(0)
        features, labels = three_class_features([300, 300, 12], seed=1)
        features[labels == 2, 20:30] -= 1.2  # a rare class that is hard to tell apart
        head = build_head(3)
        compile_model(head, THREE, 1e-3, optimizer="adam")
        data = feature_dataset(features, labels, 32, shuffle_buffer=700, seed=0)
        counts = np.bincount(labels.astype(int)).tolist()
        fit(head, data, data, 0, 3, class_weight=class_weights(counts, mode))
        predicted = THREE.predicted(THREE.probabilities(head.predict(features, verbose=0)))
        return np.mean(predicted[labels == 2] == 2)

    assert rare_class_recall("balanced") > rare_class_recall("none") + 0.2


def test_k_class_label_smoothing_bounds_the_true_class_probability():
    # Smoothed targets are 1 - s + s/K for the true class and s/K for the
    # others: the loss is lowest when the model predicts exactly that, so the
    # true class's probability settles there; unsmoothed, it goes to 1.
    def typical_true_probability(label_smoothing):
        seed_everything(0)
        features, labels = three_class_features([100, 100, 100])
        features[:, :30] *= 2
        head = build_head(3)
        compile_model(head, THREE, 1e-2, optimizer="adam", label_smoothing=label_smoothing)
        head.fit(features, labels, batch_size=32, epochs=60, verbose=0)
        probabilities = THREE.probabilities(head.predict(features, verbose=0))
        return float(np.median(probabilities[np.arange(len(labels)), labels.astype(int)]))

    assert typical_true_probability(0.3) == pytest.approx(1 - 0.3 + 0.3 / 3, abs=0.07)
    assert typical_true_probability(0.0) > 0.99


def test_feature_dataset_streams_the_batches_from_tensor_slices_would_give(tmp_path):
    # The memory-mapped stream must not change the head: same elements, same shuffle.
    features, labels = separable_features(300)
    from transfer.data.features import FeatureRows

    np.save(tmp_path / "features.npy", features)
    rows = FeatureRows(tmp_path / "features.npy")
    seed_everything(0)
    reference = (
        tf.data.Dataset.from_tensor_slices((features, labels))
        .shuffle(100, seed=3, reshuffle_each_iteration=True)
        .batch(32)
    )
    seed_everything(0)
    streamed = feature_dataset(rows, labels, 32, shuffle_buffer=100, seed=3, chunk=64)
    assert streamed.cardinality() == reference.cardinality()
    for _ in range(2):  # two epochs: the reshuffle too
        for (want_x, want_y), (got_x, got_y) in zip(reference, streamed, strict=True):
            np.testing.assert_array_equal(got_x, want_x)
            np.testing.assert_array_equal(got_y, want_y)
