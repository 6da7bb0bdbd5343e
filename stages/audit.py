"""The audit stage (after extract): duplicates, split leaks, likely label errors, outliers."""

from transfer.artifacts import FEATURES, PREPARED
from transfer.audit import (
    audit,
    duplicate_rows,
    label_issue_rows,
    outlier_rows,
    plot_duplicates,
    plot_label_issues,
    summary,
)
from transfer.errors import run_stage
from transfer.io import atomic_path, write_csv
from transfer.params import load_params
from transfer.records import write_record


def main():
    params = load_params()
    result = audit(PREPARED, FEATURES, params["audit"], params["data"]["seed"])
    # Figures first, the metrics after: a failure leaves no audit.json that looks complete.
    with atomic_path("plots/duplicates.png") as path:
        plot_duplicates(result, PREPARED, path)
    with atomic_path("plots/label_issues.png") as path:
        plot_label_issues(result, PREPARED, path)
    duplicates, issues, outliers = duplicate_rows(result), label_issue_rows(result), outlier_rows(result)
    write_csv("metrics/duplicates.csv", duplicates, ["group", "kind", "path", "split", "class", "similarity"])
    write_csv(
        "metrics/label_issues.csv",
        issues,
        ["rank", "path", "split", "given", "suggested", "suggested_probability", "label_quality"],
    )
    write_csv("metrics/outliers.csv", outliers, ["path", "split", "class", "isolation"])
    report = summary(result)
    write_record("audit", report)
    print(
        f"audit: {report['duplicate_photos']} duplicate photos in {len(result.groups)} groups "
        f"({report['leaked_groups']} across splits), {report['label_issues']} likely label errors, "
        f"{report['outliers']} outliers (metrics/audit.json)"
    )


if __name__ == "__main__":
    run_stage(main)
