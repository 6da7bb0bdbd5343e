"""What a stage measured, in two files: every figure, and the few a person compares runs by.

metrics/details/<name>.json holds every figure the stage measured (per class, per bin,
per format, thresholds, model facts): an output DVC caches and versions (git-tracked, it
would cost its stage DVC's run cache), readable, and diffable with
`dvc metrics diff <rev-a> <rev-b> --targets metrics/details/<name>.json`.
metrics/<name>.json holds the headline, a copy of the keys listed below under the same
nested names: those are the files dvc.yaml declares as `metrics`, so `dvc exp show` stays a
table a person can read (tests/test_dvc_yaml.py holds dvc.yaml to HEADLINE). The training
stages' headline is their DVCLive log (transfer.training.epoch_log), not a file of this module.
"""

import json
from pathlib import Path

from transfer.core.io import write_json

DETAILS = "metrics/details"

# Name -> the dotted keys of its headline. A key the record lacks is left out (an
# evaluation without unknown photos has no unknown.rejected). Names not listed write their
# details only.
HEADLINE = {
    "prepare": ("train.total", "skipped"),
    "audit": ("duplicate_photos", "leaked_groups", "label_issues", "outliers"),
    "eval": (
        "head.accuracy",
        "finetuned.accuracy",
        "finetuned.balanced_accuracy",
        "validation.accuracy",
        "validation.loss",  # with validation.accuracy, what runs are chosen by
        "calibration.test.ece_after",
        "novelty.unknown.rejected",
    ),
    # the int8 file's accuracy, and whether an app running it in MediaPipe Tasks gets
    # `transfer predict`'s class on every test photo
    "export": ("tflite_int8.accuracy", "mediapipe.tflite_int8.top_class_agreement"),
}


def details_path(name, root="."):
    return Path(root) / DETAILS / f"{name}.json"


def headline_path(name, root="."):
    return Path(root) / "metrics" / f"{name}.json"


def headline(name, record):
    """The HEADLINE keys of a record, nested as in the record."""
    selected = {}
    for key in HEADLINE.get(name, ()):
        *parents, leaf = key.split(".")
        value = record
        for part in (*parents, leaf):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        target = selected
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return selected


def write_record(name, record):
    """Write every figure to metrics/details/<name>.json and, for a name with a headline,
    its headline keys to metrics/<name>.json."""
    write_json(details_path(name), record)
    if name in HEADLINE:
        write_json(headline_path(name), headline(name, record))


def read_record(name, root="."):
    """Every figure a stage wrote (metrics/details/<name>.json)."""
    return json.loads(details_path(name, root).read_text())
