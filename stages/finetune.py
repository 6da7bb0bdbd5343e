"""Stage 4: unfreeze the top of the base and train base + head on images -> models/model.keras."""

from pathlib import Path

from transfer.config.params import load_params
from transfer.core.artifacts import HEAD_MODEL, MODEL, PREPARED, write_class_names
from transfer.core.errors import run_stage
from transfer.core.io import atomic_path
from transfer.core.records import details_path, read_record, write_record
from transfer.core.task import Task, class_weights
from transfer.data.shards import read_meta
from transfer.distribute.runtime import RESOLVED_FILE, start
from transfer.models.loading import load_model
from transfer.models.networks import (
    build_base,
    build_classifier,
    model_facts,
    unfreeze_top,
)
from transfer.training.epoch_log import EpochLog
from transfer.training.fine_tuning import augmentation_of, fine_tune
from transfer.training.recipe import phase_report, seed_everything


def main():
    params = load_params()
    config, seed = params["finetune"], params["data"]["seed"]
    runtime = start(params["runtime"], recorded=RESOLVED_FILE)
    runtime.agree("finetune", params, inputs=[PREPARED, HEAD_MODEL, details_path("train_head")])
    seed_everything(seed)
    meta = read_meta(PREPARED)
    counts = {split: meta["splits"][split]["count"] for split in ("train", "validation")}
    runtime.check_batches("finetune", config["batch_size"], counts)
    task = Task(meta["class_names"])
    model_params = params["model"]
    log = EpochLog("finetune") if runtime.is_chief else None  # the chief alone writes outputs
    with runtime.scope():
        base = build_base(params["data"]["image_size"], model_params["weights"], model_params["backbone"])
        unfreeze_top(base, config["fine_tune_at"])
        head = load_model(HEAD_MODEL)
        augmentation = augmentation_of(config, seed)
        model = build_classifier(base, head, augmentation)
        facts = model_facts(model, base)
        print(f"trainable variables: {facts['trainable_variables']}")

        history = fine_tune(
            model,
            base,
            task,
            PREPARED,
            config,
            seed=seed,
            # Epochs continue the head's history (which early stopping may have cut short).
            first_epoch=read_record("train_head")["epochs_run"],
            # The frozen layers see the same images every epoch unless augmented: run them once.
            cache_bottom=config["cache_bottom"] and augmentation is None,
            inference_batch_size=params["extract"]["batch_size"],
            class_weight=class_weights(meta["splits"]["train"]["class_counts"], config["class_weight"]),
            log=log,
        )
    if runtime.is_chief:
        # Augmentation is for training only: the saved model is the same base and
        # head without it, so what evaluate, predict and export run holds no random
        # ops (TFLite cannot convert them).
        with atomic_path(MODEL) as path, runtime.scope():
            build_classifier(base, head).save(path)
        # Beside the model, for `transfer predict`.
        write_class_names(Path(MODEL).parent, meta["class_names"])
        write_record("finetune", phase_report(history, config["early_stopping"], facts, runtime.resolved))
        log.end()
    runtime.done()


if __name__ == "__main__":
    run_stage(main)
