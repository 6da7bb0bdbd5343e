"""Stage scripts on bad input: one line on stderr, exit 1, no output written."""

import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, write_params


def run_stage(stage, cwd):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "stages" / f"{stage}.py")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_lines(result):
    # TensorFlow's own start-up lines (absl and CUDA-stub noise) are not ours.
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "stage, changes, message",
    [
        (
            "prepare",
            {"data__source": "kaggle"},
            "params.yaml: data.source = 'kaggle' is invalid: must be one of",
        ),
        ("prepare", {"data__source": "folder", "data__path": "nowhere"}, "data.path does not exist"),
        ("prepare", {"data__source": "folder", "data__path": "one_class"}, "at least two class folders"),
        ("extract", {"model__weights": "missing.h5"}, "model.weights: no such weights file: missing.h5"),
        (
            "finetune",
            {"model__weights": "none", "finetune__fine_tune_at": 200},
            "finetune.fine_tune_at = 200 is invalid: must be between 0 and 154",
        ),
    ],
)
def test_bad_input_is_one_line_exit_1_and_no_output(tmp_path, stage, changes, message):
    (tmp_path / "one_class" / "cats").mkdir(parents=True)
    write_params(tmp_path / "params.yaml", **changes)
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    result = run_stage(stage, tmp_path)
    assert result.returncode == 1
    assert len(error_lines(result)) == 1 and message in error_lines(result)[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    after = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    assert after == before
