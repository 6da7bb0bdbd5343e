"""Stage 5: test-split metrics of the head and of the fine-tuned model, and learning curves."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script

import numpy as np  # noqa: E402

from transfer.data import read_shards  # noqa: E402
from transfer.errors import run_stage  # noqa: E402
from transfer.features import load_features  # noqa: E402
from transfer.io import atomic_path, read_csv, write_json  # noqa: E402
from transfer.model import load_model  # noqa: E402
from transfer.params import load_params  # noqa: E402
from transfer.reports import binary_metrics, plot_learning_curves  # noqa: E402


def main():
    batch_size = load_params()["evaluate"]["batch_size"]
    features, labels = load_features("data/features", "test")
    head_logits = load_model("models/head.keras").predict(features, batch_size=batch_size, verbose=0)

    model = load_model("models/model.keras")
    image_labels, model_logits = [], []
    for images, shard_labels, _ in read_shards("data/prepared", "test"):
        model_logits.append(model.predict(images, batch_size=batch_size, verbose=0))
        image_labels.append(shard_labels)

    write_json(
        "metrics/eval.json",
        {
            "head": binary_metrics(labels, head_logits),
            "finetuned": binary_metrics(np.concatenate(image_labels), np.concatenate(model_logits)),
        },
    )
    head_history = read_csv("plots/head_history.csv")
    with atomic_path("plots/head_learning_curves.png") as path:
        plot_learning_curves(head_history, path)
    with atomic_path("plots/learning_curves.png") as path:
        plot_learning_curves(
            head_history + read_csv("plots/finetune_history.csv"), path, fine_tune_start=len(head_history)
        )


if __name__ == "__main__":
    run_stage(main)
