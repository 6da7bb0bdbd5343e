"""Stage 5: the fine-tuned model's temperature and novelty threshold -> models/calibration.json."""

from transfer.calibrating import calibrate_model
from transfer.errors import run_stage
from transfer.params import load_params
from transfer.records import write_record
from transfer.runtime import RESOLVED_FILE, start


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        write_record("calibrate", calibrate_model(params["calibrate"], params["data"]["seed"]))


if __name__ == "__main__":
    run_stage(main)
