"""Stage scripts on bad input: one line on stderr, exit 1, no output written."""

import subprocess
import sys

import pytest

from tests.conftest import (
    PROJECT_ROOT,
    SUMMARY,
    default_params,
    make_image,
    names_in_every_split,
    write_params,
)
from transfer.data.sources.folder import split_key, split_of


def make_no_training_dogs(root):
    """Ten cats, in every split, and one dog whose file name falls outside the training split."""
    params = default_params()["data"]
    for index, name in enumerate(names_in_every_split("cats", 10, params["split"], params["seed"])):
        make_image(root / "cats" / name, (200, 60, 60), noise_seed=index)
    name = next(
        f"dog{index}.jpg"
        for index in range(100)
        if split_of(split_key(f"dogs/dog{index}.jpg", params["seed"]), params["split"]) != "train"
    )
    make_image(root / "dogs" / name, (60, 60, 200))


def run_stage(stage, cwd):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "stages" / f"{stage}.py")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_lines(result):
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
        (
            "prepare",
            {"data__source": "folder", "data__path": "no_training_dogs"},
            "class 'dogs' has 0 photos in the train split (1 in all): every split needs at least 1",
        ),
        (
            "prepare",
            {"data__source": "tfds", "data__tfds_name": "iris"},
            "tfds dataset 'iris' is not image classification",
        ),
        # What extract and finetune need, refused by the first stage of a run (runtime).
        ("runtime", {"model__weights": "missing.h5"}, "model.weights: no such weights file: missing.h5"),
        ("runtime", {"data__image_size": 10}, "data.image_size = 10 is invalid: must be at least 32"),
        (
            "runtime",
            {"model__weights": "none", "finetune__fine_tune_at": 200},
            "finetune.fine_tune_at = 200 is invalid: must be an integer layer index from 0 to 154",
        ),
    ],
)
def test_bad_input_is_one_line_exit_1_and_no_output(tmp_path, stage, changes, message):
    (tmp_path / "one_class" / "cats").mkdir(parents=True)
    make_no_training_dogs(tmp_path / "no_training_dogs")
    write_params(tmp_path / "params.yaml", **changes)
    if stage not in ("prepare", "runtime"):  # dvc repro runs runtime first: its file is checked on start
        assert run_stage("runtime", tmp_path).returncode == 0
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    result = run_stage(stage, tmp_path)
    assert result.returncode == 1
    # Nothing else but the summary lines of steps that finished: no TensorFlow start-up lines.
    others = [line for line in result.stderr.splitlines() if line not in error_lines(result)]
    assert not [line for line in others if not SUMMARY.match(line)], result.stderr[-2000:]
    assert len(error_lines(result)) == 1 and message in error_lines(result)[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    after = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    assert after == before
