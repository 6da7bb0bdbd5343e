"""Stage 3: train the head (Dense(1), or Dense(K) for K classes) on cached features -> models/head.keras."""

import numpy as np

from transfer.config.params import load_params
from transfer.core.artifacts import FEATURES, HEAD_MODEL
from transfer.core.errors import run_stage
from transfer.core.io import atomic_path
from transfer.core.records import write_record
from transfer.core.task import Task, class_weights
from transfer.data.features import feature_class_names, load_features
from transfer.distribute.runtime import RESOLVED_FILE, start
from transfer.models.networks import build_head, model_facts
from transfer.training.datasets import feature_dataset
from transfer.training.epoch_log import EpochLog
from transfer.training.recipe import (
    compile_for_phase,
    evaluate,
    fit,
    phase_report,
    seed_everything,
    steps_per_epoch,
)


def main():
    params = load_params()
    config, seed = params["train_head"], params["data"]["seed"]
    runtime = start(params["runtime"], recorded=RESOLVED_FILE)
    runtime.agree("train_head", params, inputs=[FEATURES])
    seed_everything(seed)
    task = Task(feature_class_names(FEATURES))
    train_features, train_labels = load_features(FEATURES, "train")
    validation_data = load_features(FEATURES, "validation")
    counts = {"train": len(train_labels), "validation": len(validation_data[1])}
    runtime.check_batches("train_head", config["batch_size"], counts)
    train = feature_dataset(
        train_features, train_labels, config["batch_size"], config["shuffle_buffer"], seed
    )
    validation = feature_dataset(*validation_data, config["batch_size"])
    class_counts = np.bincount(train_labels.astype(np.int64), minlength=task.num_classes).tolist()

    log = EpochLog("train_head") if runtime.is_chief else None  # the chief alone writes outputs
    with runtime.scope():
        head = build_head(task.logit_width, config["dropout"], feature_width=train_features.shape[1])
        compile_for_phase(head, task, config, steps_per_epoch(train))
        initial = evaluate(head, validation)
        print(f"initial loss: {initial['loss']:.2f}, initial accuracy: {initial['accuracy']:.2f}")
        history = fit(
            head,
            train,
            validation,
            0,
            config["epochs"],
            early_stopping=config["early_stopping"],
            class_weight=class_weights(class_counts, config["class_weight"]),
            log=log,
        )
    if runtime.is_chief:
        with atomic_path(HEAD_MODEL) as path:
            head.save(path)
        report = phase_report(history, config["early_stopping"], model_facts(head), runtime.resolved)
        report["initial"] = {"val_loss": initial["loss"], "val_accuracy": initial["accuracy"]}
        write_record("train_head", report)
        log.end()
    runtime.done()


if __name__ == "__main__":
    run_stage(main)
