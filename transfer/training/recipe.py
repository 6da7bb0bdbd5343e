"""Training both phases: the tutorial's recipe (RMSprop, logits, cross-entropy) and its levers.

Levers, each off (or the tutorial's value) by default: optimizer (rmsprop,
adam, adamw), learning-rate schedule (constant or cosine decay) with a linear
warm-up, label smoothing, and early stopping on validation loss that keeps the
best epoch's weights.
"""

import keras
import tensorflow as tf

from transfer.core.errors import interrupted
from transfer.training.epoch_log import KERAS_FIGURES

# By the names params.yaml uses (transfer.config.schema.OPTIMIZERS).
OPTIMIZERS = {
    "rmsprop": keras.optimizers.RMSprop,  # the tutorial's
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,  # Keras's default weight decay, 0.004
}


def seed_everything(seed):
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def learning_rate_schedule(learning_rate, schedule, warmup_epochs, epochs, steps_per_epoch):
    """A float for a constant rate, else a Keras schedule stepped once per batch.

    warmup_epochs > 0 ramps the rate linearly from 0 over those epochs first;
    "cosine" then decays it to 0 by the end of the last epoch.
    """
    if schedule == "constant" and warmup_epochs == 0:
        return learning_rate
    warmup_steps = warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, (epochs - warmup_epochs) * steps_per_epoch),
        alpha=1.0 if schedule == "constant" else 0.0,  # alpha 1: no decay at all
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def compile_model(model, task, learning_rate, optimizer="rmsprop", label_smoothing=0.0):
    """Compile for logits, with the task's loss and accuracy (see transfer.core.task)."""
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate),
        loss=task.loss(label_smoothing),
        metrics=task.metrics(),
    )


def compile_for_phase(model, task, phase_params, steps_per_epoch):
    """compile_model with a train_head or finetune section of params.yaml."""
    schedule = learning_rate_schedule(
        phase_params["learning_rate"],
        phase_params["schedule"],
        phase_params["warmup_epochs"],
        phase_params["epochs"],
        steps_per_epoch,
    )
    compile_model(model, task, schedule, phase_params["optimizer"], phase_params["label_smoothing"])


def steps_per_epoch(dataset):
    steps = int(dataset.cardinality())
    if steps < 0:
        raise ValueError("the training dataset's length is unknown")
    return steps


class StopOnInterrupt(keras.callbacks.Callback):
    """Re-raise a Ctrl-C that TensorFlow's C++ code swallowed (see errors.interrupted)."""

    def on_train_batch_end(self, batch, logs=None):
        if interrupted():
            raise KeyboardInterrupt

    on_test_batch_end = on_train_batch_end


class LogEpochs(keras.callbacks.Callback):
    """Each epoch's figures and learning rate to a DVCLive log (transfer.training.epoch_log.EpochLog)."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def on_epoch_end(self, epoch, logs=None):
        # Keras passes the epoch's index counted from 0, initial_epoch included.
        learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        self.log.epoch(epoch + 1, {**logs, "lr": learning_rate})


def fit(
    model, train_data, validation_data, first_epoch, epochs, early_stopping=0, class_weight=None, log=None
):
    """Train up to `epochs` epochs numbered after `first_epoch`; returns history rows.

    Epochs are numbered from 1 and continue across phases, so the fine-tune
    phase's rows follow the head's. early_stopping > 0 stops after that many
    epochs without a lower validation loss and puts back the weights of the epoch
    with the lowest (see kept_epoch). class_weight: Keras's {class index: weight}
    (see task.class_weights), or None. log: an EpochLog that each epoch is logged
    to as it ends (the chief's; None on other workers).
    """
    callbacks = [StopOnInterrupt()]
    if log is not None:
        callbacks.append(LogEpochs(log))
    if early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=early_stopping, restore_best_weights=True, verbose=1
            )
        )
    history = model.fit(
        train_data,
        validation_data=validation_data,
        initial_epoch=first_epoch,
        epochs=first_epoch + epochs,
        shuffle=False,  # the datasets shuffle themselves
        callbacks=callbacks,
        class_weight=class_weight,
        verbose=2,
    )
    rows = []
    for index in range(len(history.history["loss"])):
        row = {"epoch": first_epoch + index + 1}
        row.update({name: float(history.history[name][index]) for name in KERAS_FIGURES})
        rows.append(row)
    return rows


def kept_epoch(rows, early_stopping):
    """The history row whose weights the model ends with: with early stopping the
    first epoch of lowest validation loss (what Keras restores), else the last."""
    if not early_stopping:
        return rows[-1]
    return min(rows, key=lambda row: row["val_loss"])


def phase_report(rows, early_stopping, model_facts, runtime=None):
    """metrics/details/<stage>.json: the kept epoch's figures (under "final", the weights
    that are saved), how many epochs ran, the model's parameter counts and, when
    given, what the runtime resolved to (transfer.distribute.runtime.resolve: strategy,
    precision, devices, versions)."""
    kept = kept_epoch(rows, early_stopping)
    report = {
        "final": {name: kept[name] for name in KERAS_FIGURES},
        "kept_epoch": kept["epoch"],
        "epochs_run": len(rows),
        "model": model_facts,
    }
    if runtime is not None:
        report["runtime"] = runtime
    return report


def evaluate(model, data):
    """{'loss': ..., 'accuracy': ...} of a compiled model."""
    return {name: float(value) for name, value in model.evaluate(data, verbose=0, return_dict=True).items()}
