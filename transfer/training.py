"""Training both phases with the tutorial's recipe (RMSprop, logits, BCE)."""

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
