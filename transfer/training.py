"""Training both phases with the tutorial's recipe (RMSprop, logits, BCE)."""

import tempfile

import keras
import tensorflow as tf

HISTORY_COLUMNS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy")


def seed_everything(seed):
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_model(model, learning_rate):
    """RMSprop on logits. Accuracy thresholds the logit at 0: Keras's plain
    'accuracy' would threshold at 0.5 even with from_logits=True."""
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )


def feature_dataset(features, labels, batch_size, shuffle_buffer=None, seed=None):
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit(model, train_data, validation_data, first_epoch, epochs, phase):
    """Train `epochs` epochs numbered after `first_epoch`; returns history rows.

    Epochs are numbered from 1 and continue across phases, so the fine-tune
    phase's rows follow the head's in one history.
    """
    history = model.fit(
        train_data,
        validation_data=validation_data,
        initial_epoch=first_epoch,
        epochs=first_epoch + epochs,
        shuffle=False,  # the datasets shuffle themselves
        verbose=2,
    )
    rows = []
    for index in range(epochs):
        row = {"epoch": first_epoch + index + 1, "phase": phase}
        row.update({name: float(history.history[name][index]) for name in HISTORY_COLUMNS[2:]})
        rows.append(row)
    return rows


def evaluate(model, data):
    """{'loss': ..., 'accuracy': ...} of a compiled model."""
    return {name: float(value) for name, value in model.evaluate(data, verbose=0, return_dict=True).items()}


def fine_tune(
    model,
    base,
    prepared_dir,
    *,
    fine_tune_at,
    learning_rate,
    batch_size,
    shuffle_buffer,
    seed,
    first_epoch,
    epochs,
    cache_bottom,
    inference_batch_size,
):
    """Train the compiled classifier on the prepared images; returns history rows.

    With cache_bottom, the frozen layers below fine_tune_at run once per image
    (their outputs are cached in a temporary folder) and each epoch trains only
    the top, which shares the classifier's weights: the same model, to within
    float noise, in less time. Only valid when the training images do not
    change between epochs (no augmentation).
    """
    from transfer.data import image_dataset
    from transfer.features import activation_dataset, cache_activations
    from transfer.model import split_frozen_bottom

    if not cache_bottom or fine_tune_at == 0:
        train = image_dataset(prepared_dir, "train", batch_size, shuffle_buffer, seed)
        validation = image_dataset(prepared_dir, "validation", batch_size)
        return fit(model, train, validation, first_epoch, epochs, phase="finetune")
    bottom, top = split_frozen_bottom(model, base, fine_tune_at)
    compile_model(top, learning_rate)
    with tempfile.TemporaryDirectory(prefix="transfer-activations-") as cache:
        for split in ("train", "validation"):
            cache_activations(bottom, prepared_dir, split, cache, inference_batch_size)
        train = activation_dataset(cache, "train", batch_size, shuffle_buffer, seed)
        validation = activation_dataset(cache, "validation", batch_size)
        return fit(top, train, validation, first_epoch, epochs, phase="finetune")
