"""metrics/report.md: one run in Markdown, what a DVC/CML user pastes into a pull request.

The params the run changed from the defaults (transfer.config.schema.DEFAULTS, the
tutorial's), the head-only and fine-tuned test metrics side by side, the
fine-tuned model's per-class table, the data audit's findings, and links to the
figures (relative to metrics/, so `cml comment create metrics/report.md` uploads them).
"""

from transfer.config.schema import DEFAULTS
from transfer.core import artifacts

# (eval.json key, row name); AUC exists for two classes only.
METRIC_ROWS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("loss", "loss (cross-entropy)"),
    ("auc", "ROC AUC"),
    ("macro_f1", "macro F1"),
)
FIGURES = (
    ("learning curves", artifacts.LEARNING_CURVES_PLOT),
    ("most confidently wrong test images", artifacts.MISCLASSIFIED_PLOT),
    ("training samples", artifacts.SAMPLES_PLOT),
    ("near-duplicate groups", artifacts.DUPLICATES_PLOT),
    ("likely label errors", artifacts.LABEL_ISSUES_PLOT),
)


def changed_params(params, defaults=DEFAULTS):
    """[(dotted key, default, this run's value)] in params.yaml order."""
    return [
        (f"{section}.{key}", defaults.get(section, {}).get(key), value)
        for section, values in params.items()
        for key, value in values.items()
        if defaults.get(section, {}).get(key) != value
    ]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def number(value):
    return f"{value:.4f}"


def data_health(audit):
    """The audit's findings (its record, transfer.core.records) in a few lines, with where to look next."""
    leaks = audit["leaks"]
    classes = ", ".join(f"{name} {count}" for name, count in audit["classes"].items())
    return [
        "## Data health (audit stage)",
        "",
        f"- Photos per class: {classes} (imbalance ratio {audit['imbalance_ratio']:.2f}).",
        f"- Duplicates: {audit['exact_duplicate_groups']} exact and {audit['near_duplicate_groups']} "
        f"near-duplicate groups ({audit['duplicate_photos']} extra copies); across splits: "
        f"train-validation {leaks['train_validation']}, train-test {leaks['train_test']}, "
        f"validation-test {leaks['validation_test']} (`{artifacts.DUPLICATES_TABLE}`).",
        f"- Likely label errors: {audit['label_issues']} "
        f"(test split {audit['label_issues_by_split']['test']}; "
        f"cross-validated accuracy of a linear head {audit['out_of_sample_accuracy']:.4f}; "
        f"`{artifacts.LABEL_ISSUES_TABLE}`, most likely first).",
        f"- Outliers: {audit['outliers']} (`{artifacts.OUTLIERS_TABLE}`).",
        "- To look at them and keep, move or drop each: `transfer review` (it writes `data/exclusions.csv`), "
        "then `dvc repro`.",
        "",
    ]


def calibration_lines(calibration):
    """Temperature scaling's effect (eval.json's `calibration`) as a small table."""
    rows = [
        (
            split,
            number(calibration[split]["ece_before"]),
            number(calibration[split]["ece_after"]),
            number(calibration[split]["log_loss_before"]),
            number(calibration[split]["log_loss_after"]),
        )
        for split in ("test", "validation")
    ]
    return [
        "## Calibration (fine-tuned model)",
        "",
        f"Temperature {calibration['temperature']:.4f}, fitted on the validation split; expected "
        f"calibration error over {calibration['bins']} equal-width bins of the predicted class's "
        "probability.",
        "",
        table(["split", "ECE before", "ECE after", "log loss before", "log loss after"], rows),
        "",
    ]


def novelty_lines(novelty):
    """The unknown-photo check (eval.json's `novelty`): acceptance of in-class photos at the
    saved threshold, and the share of the unknown photos it rejects."""
    unknown = novelty["unknown"]
    rows = [
        ("validation photos accepted", number(novelty["validation_accepted"])),
        ("test photos accepted", number(novelty["test_accepted"])),
    ]
    if unknown["photos"]:
        rows += [
            (
                f"unknown photos rejected ({unknown['photos']} in `{unknown['folder']}`)",
                number(unknown["rejected"]),
            ),
            ("AUROC, test photos against the unknown ones", number(unknown["auroc_against_test"])),
        ]
    else:
        rows.append(("unknown photos rejected", f"none in `{unknown['folder']}` (evaluate.unknown_photos)"))
    return [
        "## Photos of none of the classes (novelty check)",
        "",
        f"Score `{novelty['method']}`; a photo is unknown above {novelty['threshold']:.4g}, the threshold "
        f"set on the validation split to accept at least {novelty['accept']:.0%} of it.",
        "",
        table(["", ""], rows),
        "",
    ]


def run_report(params, evaluation, audit=None):
    """The Markdown text of metrics/report.md from params.yaml, metrics/eval.json and metrics/audit.json."""
    head, finetuned = evaluation["head"], evaluation["finetuned"]
    model, data = params["model"], params["data"]
    lines = [
        "# Run report",
        "",
        f"{model['backbone']} at {data['image_size']} px, {evaluation['classes']} classes, "
        f"{evaluation['test_images']} test images.",
        "",
        "## Params changed from the defaults",
        "",
    ]
    changes = changed_params(params)
    if changes:
        lines.append(table(["param", "default", "this run"], [(f"`{k}`", d, v) for k, d, v in changes]))
    else:
        lines.append("None: this run has the defaults (TensorFlow's tutorial).")
    rows = [
        (name, number(head[key]), number(finetuned[key])) for key, name in METRIC_ROWS if key in finetuned
    ]
    if "validation" in evaluation:
        rows.append(("validation accuracy", "", number(evaluation["validation"]["accuracy"])))
    per_class = [
        (name, number(row["precision"]), number(row["recall"]), number(row["f1"]), row["support"])
        for name, row in finetuned["per_class"].items()
    ]
    lines += [
        "",
        "## Test metrics",
        "",
        table(["metric", "head only", "fine-tuned"], rows),
        "",
        "## Per class (fine-tuned, test split)",
        "",
        table(["class", "precision", "recall", "F1", "images"], per_class),
        "",
        *(calibration_lines(evaluation["calibration"]) if "calibration" in evaluation else []),
        *(novelty_lines(evaluation["novelty"]) if "novelty" in evaluation else []),
        *(data_health(audit) if audit is not None else []),
        "## Figures",
        "",
        *(f"- [{caption}](../{path})" for caption, path in FIGURES),
        "",
        f"![learning curves](../{artifacts.LEARNING_CURVES_PLOT})",
        "",
        "Every figure of the run, under the names above: `metrics/details/<stage>.json` "
        "(`dvc metrics diff <rev-a> <rev-b> --targets metrics/details/eval.json`); "
        "each training epoch: `dvclive/train_head/`, `dvclive/finetune/`.",
        "",
    ]
    return "\n".join(lines)
