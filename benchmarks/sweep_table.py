"""Condense `dvc exp show --csv` into the Markdown table of docs/sweep.md.

    dvc exp show -A --csv > docs/sweep.csv
    python benchmarks/sweep_table.py docs/sweep.csv

Rows are sorted the way runs are chosen: validation accuracy (TTA as set),
then validation loss. Test columns are shown, never used to sort.
"""

import argparse
import csv

HEAD_STEP = "dvclive/train_head/metrics.json:step"
FINETUNE_STEP = "dvclive/finetune/metrics.json:step"
FINETUNE_EPOCHS_RUN = "finetune epochs run"  # the two logs' last steps apart (added by main)

COLUMNS = [
    ("experiment", "Experiment"),
    # DVC prefixes a column with its file where two files share the key (metrics also name the backbone).
    ("backbone", ("model.backbone", "params.yaml:model.backbone")),
    ("px", "data.image_size"),
    ("label smoothing", "train_head.label_smoothing"),
    ("augment", "finetune.augment"),
    ("fine_tune_at", "finetune.fine_tune_at"),
    ("finetune optimizer", "finetune.optimizer"),
    ("finetune lr", "finetune.learning_rate"),
    ("finetune schedule", "finetune.schedule"),
    ("finetune label smoothing", "finetune.label_smoothing"),
    ("tta", "evaluate.tta"),
    # The DVCLive logs' last epoch (train_head.val_accuracy, step); sweeps before them
    # recorded the kept epoch's (the same without early stopping) and epochs_run.
    ("head val acc", ("train_head.val_accuracy", "metrics/train_head.json:final.val_accuracy")),
    ("head epochs", (HEAD_STEP, "metrics/train_head.json:epochs_run")),
    ("finetune epochs (max)", "finetune.epochs"),
    ("finetune epochs run", (FINETUNE_EPOCHS_RUN, "metrics/finetune.json:epochs_run")),
    ("val acc", "validation.accuracy"),
    ("val loss", "validation.loss"),
    ("test acc, head", "head.accuracy"),
    ("test acc, fine-tuned", "finetuned.accuracy"),
    ("test balanced acc, fine-tuned", "finetuned.balanced_accuracy"),
    ("test acc, TFLite float32", "tflite_float32.accuracy"),
    ("test acc, TFLite int8", "tflite_int8.accuracy"),
]


def cell(key, value):
    """Metrics to 4 decimals; params as DVC recorded them."""
    if key.endswith(("accuracy", "loss")) and value:
        return f"{float(value):.4f}"
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="output of dvc exp show --csv")
    args = parser.parse_args()
    with open(args.csv, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["Experiment"] and row["State"] == "Success"]
    for row in rows:
        if row.get(HEAD_STEP):  # fine-tuning's epochs are numbered after the head's
            row[FINETUNE_EPOCHS_RUN] = str(int(row[FINETUNE_STEP]) - int(row[HEAD_STEP]))
    rows.sort(key=lambda row: (-float(row["validation.accuracy"]), float(row["validation.loss"])))
    print("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(cell(*lookup(row, keys)) for _, keys in COLUMNS) + " |")


def lookup(row, keys):
    """(key, value) of the first of keys the row has; columns a sweep's CSV lacks (a metric added
    later) stay empty."""
    keys = (keys,) if isinstance(keys, str) else keys
    return next(((key, row[key]) for key in keys if row.get(key)), (keys[0], ""))


if __name__ == "__main__":
    main()
