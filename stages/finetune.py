"""Stage 4: unfreeze the top of the base and train base + head on images -> models/model.keras."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script

from transfer.backbones import check_params  # noqa: E402
from transfer.data import read_meta  # noqa: E402
from transfer.errors import run_stage  # noqa: E402
from transfer.io import atomic_path, read_csv, write_csv, write_json  # noqa: E402
from transfer.model import (  # noqa: E402
    build_augmentation,
    build_base,
    build_classifier,
    load_model,
    model_facts,
    unfreeze_top,
)
from transfer.params import load_params  # noqa: E402
from transfer.runtime import RESOLVED_FILE, start  # noqa: E402
from transfer.task import Task, class_weights  # noqa: E402
from transfer.training import HISTORY_COLUMNS, fine_tune, phase_report, seed_everything  # noqa: E402


def main():
    params = load_params()
    check_params(params)
    config, seed = params["finetune"], params["data"]["seed"]
    runtime = start(params["runtime"], recorded=RESOLVED_FILE)
    seed_everything(seed)
    meta = read_meta("data/prepared")
    task = Task(meta["class_names"])
    model_params = params["model"]
    with runtime.scope():
        base = build_base(params["data"]["image_size"], model_params["weights"], model_params["backbone"])
        unfreeze_top(base, config["fine_tune_at"])
        head = load_model("models/head.keras")
        augmentation = None
        if config["augment"]:
            augmentation = build_augmentation(
                seed,
                flip=config["augment_flip"],
                rotation=config["augment_rotation"],
                zoom=config["augment_zoom"],
                contrast=config["augment_contrast"],
            )
        model = build_classifier(base, head, augmentation)
        facts = model_facts(model, base)
        print(f"trainable variables: {facts['trainable_variables']}")

        history = fine_tune(
            model,
            base,
            task,
            "data/prepared",
            config,
            seed=seed,
            # Epochs continue the head's history (which early stopping may have cut short).
            first_epoch=int(read_csv("plots/head_history.csv")[-1]["epoch"]),
            # The frozen layers see the same images every epoch unless augmented: run them once.
            cache_bottom=config["cache_bottom"] and augmentation is None,
            inference_batch_size=params["extract"]["batch_size"],
            class_weight=class_weights(meta["splits"]["train"]["class_counts"], config["class_weight"]),
        )
        if not runtime.is_chief:
            return  # the chief writes the outputs

    # Augmentation is for training only: the saved model is the same base and
    # head without it, so what evaluate, predict and export run holds no random
    # ops (TFLite cannot convert them).
    with atomic_path("models/model.keras") as path, runtime.scope():
        build_classifier(base, head).save(path)
    # Beside the model, for `python -m transfer predict`.
    write_json("models/classes.json", {"class_names": meta["class_names"]})
    write_csv("plots/finetune_history.csv", history, HISTORY_COLUMNS)
    write_json(
        "metrics/finetune.json", phase_report(history, config["early_stopping"], facts, runtime.resolved)
    )


if __name__ == "__main__":
    run_stage(main)
