"""Stage 0: what runtime `auto` resolves to on this machine -> metrics/runtime.json.

Runs on every `dvc repro` (always_changed); the stages that compute depend on
its file, so a machine that resolves differently never reuses their cache.
"""

from transfer.config.params import load_params
from transfer.core.errors import run_stage
from transfer.core.io import write_json
from transfer.distribute.resolve import resolve
from transfer.distribute.runtime import RESOLVED_FILE


def main():
    write_json(RESOLVED_FILE, resolve(load_params()["runtime"]))


if __name__ == "__main__":
    run_stage(main)
