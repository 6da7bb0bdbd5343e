"""metrics/report.md: one run in Markdown, what a DVC/CML user pastes into a pull request.

The params the run changed from the defaults (transfer.params.DEFAULTS, the
tutorial's), the head-only and fine-tuned test metrics side by side, the
fine-tuned model's per-class table, and links to the figures (relative to
metrics/, so `cml comment create metrics/report.md` uploads them).
"""

from transfer.params import DEFAULTS

# (eval.json key, row name); AUC exists for two classes only.
METRIC_ROWS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("loss", "loss (cross-entropy)"),
    ("auc", "ROC AUC"),
    ("macro_f1", "macro F1"),
)
FIGURES = (
    ("learning curves", "plots/learning_curves.png"),
    ("most confidently wrong test images", "plots/misclassified.png"),
    ("training samples", "plots/samples.png"),
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


def run_report(params, evaluation):
    """The Markdown text of metrics/report.md from params.yaml and metrics/eval.json."""
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
        "## Figures",
        "",
        *(f"- [{caption}](../{path})" for caption, path in FIGURES),
        "",
        "![learning curves](../plots/learning_curves.png)",
        "",
    ]
    return "\n".join(lines)
