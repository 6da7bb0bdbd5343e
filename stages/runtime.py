"""Stage 0: what runtime `auto` resolves to on this machine -> metrics/runtime.json.

Runs on every `dvc repro` (always_changed); the stages that compute depend on
its file, so a machine that resolves differently never reuses their cache.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script

from transfer.errors import run_stage  # noqa: E402
from transfer.io import write_json  # noqa: E402
from transfer.params import load_params  # noqa: E402
from transfer.runtime import RESOLVED_FILE, resolve  # noqa: E402


def main():
    write_json(RESOLVED_FILE, resolve(load_params()["runtime"]))


if __name__ == "__main__":
    run_stage(main)
