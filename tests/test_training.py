import keras
import numpy as np
import pytest

from transfer.model import FEATURE_SIZE, build_head
from transfer.training import compile_model, evaluate, feature_dataset, fit, seed_everything


def separable_features(count, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 2).astype("float32")
    features = rng.normal(size=(count, FEATURE_SIZE)).astype("float32")
    features[:, :10] += (labels[:, None] * 2 - 1) * 3.0  # the class shifts ten features
    return features, labels


def train_head(seed, epochs=3):
    seed_everything(seed)
    features, labels = separable_features(200)
    head = build_head(0.2)
    compile_model(head, 1e-2)
    train = feature_dataset(features, labels, 32, shuffle_buffer=100, seed=seed)
    validation = feature_dataset(*separable_features(100, seed=1), 32)
    initial = evaluate(head, validation)
    history = fit(head, train, validation, first_epoch=0, epochs=epochs, phase="head")
    return head, initial, history


def test_accuracy_thresholds_logits_at_zero():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Identity()])
    compile_model(model, 1e-3)
    logits = np.array([[0.2], [-0.2], [0.3], [-0.4]], "float32")  # all on the correct side of 0
    result = model.evaluate(logits, np.array([1, 0, 1, 0], "float32"), verbose=0, return_dict=True)
    assert result["accuracy"] == 1.0


def test_head_learns_and_history_rows_are_numbered_per_epoch():
    _, initial, history = train_head(seed=0)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {row["phase"] for row in history} == {"head"}
    assert history[-1]["val_accuracy"] > 0.9 > initial["accuracy"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_epochs_continue_after_the_first_phase():
    seed_everything(0)
    head = build_head()
    compile_model(head, 1e-3)
    data = feature_dataset(*separable_features(64), 32)
    rows = fit(head, data, data, first_epoch=10, epochs=2, phase="finetune")
    assert [(row["epoch"], row["phase"]) for row in rows] == [(11, "finetune"), (12, "finetune")]


def test_same_seed_same_weights_and_metrics():
    first, _, first_history = train_head(seed=7)
    second, _, second_history = train_head(seed=7)
    other, _, _ = train_head(seed=8)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first_history == second_history
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


@pytest.mark.parametrize("fine_tune_at", [100, 120])  # two tensors cross the cut at 100, one at 120
def test_training_on_the_cached_bottom_gives_the_same_model(tmp_path, shared_weights, fine_tune_at):
    from tests.conftest import default_params, make_image_folder
    from transfer.data import prepare_folder
    from transfer.model import build_base, build_classifier, unfreeze_top
    from transfer.training import fine_tune

    root = make_image_folder(tmp_path / "images", per_class=20)
    prepare_folder(root, tmp_path / "prepared", 48, [0.6, 0.2, 0.2], seed=0)

    def fine_tuned(cache_bottom):
        seed_everything(1)
        base = build_base(48, str(shared_weights))
        unfreeze_top(base, fine_tune_at)
        model = build_classifier(base, build_head(0.2))
        phase_params = dict(
            default_params()["finetune"], fine_tune_at=fine_tune_at, batch_size=8, shuffle_buffer=100
        )
        history = fine_tune(
            model,
            base,
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
    from transfer.model import build_base, build_classifier

    seed_everything(1)
    return build_classifier(build_base(48, str(shared_weights)), build_head(0.2)).get_weights()
