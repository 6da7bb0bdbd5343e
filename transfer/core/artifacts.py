"""Where the pipeline keeps what it makes, and the small files that travel with each model.

Every path a stage writes is named here once; dvc.yaml declares them (tests/test_dvc_yaml.py
holds every path here to an output of a stage, and tests/test_faults.py every stage to its
outputs). Beside the features and each model go `classes.json` ({"class_names": [...]},
index order) and, once the calibrate stage ran, `calibration.json` (the temperature and the
novelty settings with their threshold) and `novelty.npz` (the novelty score's statistics).
A model with calibration.json beside it is calibrated; then novelty.npz must be there too.
"""

import json
from pathlib import Path

from transfer.core.errors import PipelineError, one_line
from transfer.core.io import atomic_path, write_json

PREPARED = "data/prepared"
FEATURES = "data/features"
HEAD_MODEL = "models/head.keras"
MODEL = "models/model.keras"
EXPORT = "export"

SAMPLES_PLOT = "plots/samples.png"
SKIPPED = "metrics/skipped.json"
DUPLICATES_PLOT = "plots/duplicates.png"
LABEL_ISSUES_PLOT = "plots/label_issues.png"
DUPLICATES_TABLE = "metrics/duplicates.csv"
LABEL_ISSUES_TABLE = "metrics/label_issues.csv"
OUTLIERS_TABLE = "metrics/outliers.csv"
PREDICTIONS_TABLE = "metrics/predictions.csv"
MISTAKES_TABLE = "metrics/mistakes.csv"
TO_LABEL_TABLE = "metrics/to_label.csv"
TO_LABEL_UNKNOWN_TABLE = "metrics/to_label_unknown.csv"
POOL_LISTING = "metrics/pool.json"
MISCLASSIFIED_PLOT = "plots/misclassified.png"
HEAD_LEARNING_CURVES_PLOT = "plots/head_learning_curves.png"
LEARNING_CURVES_PLOT = "plots/learning_curves.png"
REPORT = "metrics/report.md"


def curve_table(curve, name):
    """plots/<curve>/<name>.csv: reliability (before, after), roc and precision_recall (head,
    finetuned), per_class (roc, precision_recall)."""
    return f"plots/{curve}/{name}.csv"


CLASSES_FILE = "classes.json"
CALIBRATION_FILE = "calibration.json"
NOVELTY_FILE = "novelty.npz"


def model_not_found(path):
    return PipelineError(f"model not found: {path}")


def classes_json(class_names):
    return json.dumps({"class_names": list(class_names)}) + "\n"


def write_class_names(folder, class_names):
    """classes.json in folder."""
    (Path(folder) / CLASSES_FILE).write_text(classes_json(class_names))


def read_classes_file(folder, missing):
    """The class names of folder/classes.json; PipelineError(missing) without it."""
    path = Path(folder) / CLASSES_FILE
    if not path.is_file():
        raise PipelineError(missing.format(path=path))
    return checked_class_names(read_json_file(path), path)


def read_json_file(path):
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path} is not valid JSON: {one_line(error)}") from None


def checked_class_names(content, source):
    """content["class_names"] when it is a list of two or more distinct, non-empty names."""
    names = content.get("class_names") if isinstance(content, dict) else None
    if (
        not isinstance(names, list)
        or len(names) < 2
        or not all(isinstance(name, str) and name.strip() for name in names)
        or len(set(names)) != len(names)
    ):
        shown = repr(names)[:80] if names is not None else "nothing"
        raise PipelineError(
            f'{source}: "class_names" must be a list of two or more distinct class names, found {shown}'
        )
    return names


def write_calibration(folder, calibration, statistics):
    """calibration.json and novelty.npz in folder (statistics: name -> array)."""
    import numpy as np

    with atomic_path(Path(folder) / NOVELTY_FILE) as path, open(path, "wb") as file:
        np.savez(file, **statistics)
    write_json(Path(folder) / CALIBRATION_FILE, calibration)


def calibration_files(folder):
    """The calibration files in folder, [] for a model never calibrated: the one rule for
    "is this model calibrated?" (calibration.json is there; novelty.npz must be too)."""
    calibration, statistics = Path(folder) / CALIBRATION_FILE, Path(folder) / NOVELTY_FILE
    if not calibration.is_file():
        return []
    if not statistics.is_file():
        raise PipelineError(
            f"{statistics} is missing: {calibration} needs it (rerun the calibrate stage: dvc repro)"
        )
    return [calibration, statistics]


def read_calibration_files(files):
    """(calibration, statistics) of calibration_files' list, (None, None) for []."""
    import numpy as np

    if not files:
        return None, None
    calibration_file, statistics_file = files
    try:
        with np.load(statistics_file, allow_pickle=False) as archive:
            statistics = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise PipelineError(f"cannot read {statistics_file}: {one_line(error)}") from None
    return read_json_file(calibration_file), statistics
