"""The audit stage (after extract): duplicates, split leaks, likely label errors, outliers."""

from transfer.audit.findings import audit, duplicate_rows, label_issue_rows, outlier_rows, summary
from transfer.audit.plots import plot_duplicates, plot_label_issues
from transfer.config.params import load_params
from transfer.core import artifacts
from transfer.core.artifacts import FEATURES, PREPARED
from transfer.core.errors import run_stage
from transfer.core.io import atomic_path, write_csv
from transfer.core.records import write_record
from transfer.data.exclusions import EXCLUSIONS, Exclusions
from transfer.data.sources import get_source, photo_file


def main():
    params = load_params()
    data = params["data"]
    exclusions = Exclusions.read(EXCLUSIONS, get_source(data["source"]).photo_folder(data))
    reviewed = exclusions.reviewed(lambda photo: photo_file(data, photo))
    result = audit(PREPARED, FEATURES, params["audit"], data["seed"], reviewed)
    # Figures first, the metrics after: a failure leaves no audit.json that looks complete.
    with atomic_path(artifacts.DUPLICATES_PLOT) as path:
        plot_duplicates(result, PREPARED, path)
    with atomic_path(artifacts.LABEL_ISSUES_PLOT) as path:
        plot_label_issues(result, PREPARED, path)
    duplicates, issues, outliers = duplicate_rows(result), label_issue_rows(result), outlier_rows(result)
    duplicate_columns = ["group", "kind", "path", "split", "class", "similarity"]
    write_csv(artifacts.DUPLICATES_TABLE, duplicates, duplicate_columns)
    write_csv(
        artifacts.LABEL_ISSUES_TABLE,
        issues,
        ["rank", "path", "split", "given", "suggested", "suggested_probability", "label_quality"],
    )
    write_csv(artifacts.OUTLIERS_TABLE, outliers, ["path", "split", "class", "isolation"])
    report = summary(result)
    write_record("audit", report)
    print(
        f"audit: {report['duplicate_photos']} duplicate photos in {len(result.groups)} groups "
        f"({report['leaked_groups']} across splits), {report['label_issues']} likely label errors, "
        f"{report['outliers']} outliers (metrics/audit.json)"
    )


if __name__ == "__main__":
    run_stage(main)
