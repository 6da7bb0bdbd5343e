"""Stage 7: export the fine-tuned model (SavedModel, TFLite float32 and int8) and measure each file."""

from transfer.errors import run_stage
from transfer.export import export_model
from transfer.params import load_params
from transfer.runtime import RESOLVED_FILE, start


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        export_model(params["export"], params["data"])


if __name__ == "__main__":
    run_stage(main)
