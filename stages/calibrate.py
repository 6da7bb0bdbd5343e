"""Stage 5: the fine-tuned model's temperature and novelty threshold -> models/calibration.json."""

from transfer.calibration.fitting import calibrate_model
from transfer.config.params import load_params
from transfer.core.errors import run_stage
from transfer.core.records import write_record
from transfer.distribute.runtime import RESOLVED_FILE, start


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        write_record("calibrate", calibrate_model(params["calibrate"], params["data"]["seed"]))


if __name__ == "__main__":
    run_stage(main)
