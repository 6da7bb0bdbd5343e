"""Stage 7: export the fine-tuned model (SavedModel, TFLite float32 and int8) and measure each file."""

from transfer.config.params import load_params
from transfer.core.errors import run_stage
from transfer.core.records import write_record
from transfer.deploy.export.exporter import export_model
from transfer.distribute.runtime import RESOLVED_FILE, start


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        write_record("export", export_model(params["export"], params["data"]))


if __name__ == "__main__":
    run_stage(main)
