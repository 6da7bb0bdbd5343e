"""Stage 6: test-split metrics, predictions, curves and figures for both models."""

from transfer.config.params import load_params
from transfer.core.artifacts import REPORT
from transfer.core.errors import run_stage
from transfer.core.io import write_text
from transfer.core.records import read_record
from transfer.distribute.runtime import RESOLVED_FILE, start
from transfer.reporting.evaluation import evaluate_models
from transfer.reporting.plots_page import write_template
from transfer.reporting.summary import run_report


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        evaluation = evaluate_models(params["evaluate"], params["runtime"]["threads"])
    audit = read_record("audit")
    write_text(REPORT, run_report(params, evaluation, audit))
    # The page `dvc plots show`/`diff` draws the plots in (.dvc/config points at it).
    write_template()


if __name__ == "__main__":
    run_stage(main)
