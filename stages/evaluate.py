"""Stage 6: test-split metrics, predictions, curves and figures for both models."""

from transfer.errors import run_stage
from transfer.evaluation import evaluate_models
from transfer.io import write_text
from transfer.params import load_params
from transfer.plots_page import write_template
from transfer.records import read_record
from transfer.report import run_report
from transfer.runtime import RESOLVED_FILE, start


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        evaluation = evaluate_models(params["evaluate"], params["runtime"]["threads"])
    audit = read_record("audit")
    write_text("metrics/report.md", run_report(params, evaluation, audit))
    # The page `dvc plots show`/`diff` draws the plots in (.dvc/config points at it).
    write_template()


if __name__ == "__main__":
    run_stage(main)
