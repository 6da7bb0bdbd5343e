"""The tfds source, offline: tfds.testing.mock_data stands in for the download
and generates random examples from each dataset's real feature spec."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.conftest import PROJECT_ROOT, write_params
from transfer.core.errors import PipelineError
from transfer.data.shards import SPLITS, read_meta, read_shards
from transfer.data.sources.tfds import prepare_tfds


@pytest.mark.parametrize(
    "name, class_names",
    [
        ("cats_vs_dogs", ["cat", "dog"]),
        ("tf_flowers", ["dandelion", "daisy", "tulips", "sunflowers", "roses"]),
    ],
)
def test_tfds_source_splits_resizes_and_names_classes(tmp_path, monkeypatch, name, class_names):
    calls = []
    data_dir = str(tmp_path / "tfds")
    with tfds.testing.mock_data(num_examples=50):
        mocked_load = tfds.load

        def recording_load(*args, **kwargs):
            calls.append((args, kwargs))
            return mocked_load(*args, **kwargs)

        monkeypatch.setattr(tfds, "load", recording_load)
        counts, skipped = prepare_tfds(tmp_path / "prepared", 48, [0.7, 0.2, 0.1], name, data_dir)
    splits = ["train[:70%]", "train[70%:90%]", "train[90%:]"]
    assert calls == [((name,), {"split": splits, "data_dir": data_dir})]
    meta = read_meta(tmp_path / "prepared")
    assert meta["class_names"] == class_names  # the dataset's own label order
    assert meta["source"] == f"tfds:{name}"
    assert skipped == []
    totals = {split: sum(counts[split].values()) for split in SPLITS}
    # The mock ignores slicing and gives num_examples for each split.
    assert totals == {"train": 50, "validation": 50, "test": 50}
    for split in SPLITS:
        images, labels, ids = next(read_shards(tmp_path / "prepared", split))
        assert images.shape == (totals[split], 48, 48, 3) and images.dtype == np.uint8
        assert set(labels) <= set(range(len(class_names)))
    assert str(ids[0]) == "train[90%:]#0"


def test_grayscale_tfds_images_become_rgb(tmp_path):
    with tfds.testing.mock_data(num_examples=100):  # enough for every digit in every split
        prepare_tfds(tmp_path / "prepared", 32, [0.8, 0.1, 0.1], name="mnist")
    images, _, _ = next(read_shards(tmp_path / "prepared", "train"))
    assert images.shape[1:] == (32, 32, 3)
    assert read_meta(tmp_path / "prepared")["class_names"] == [str(digit) for digit in range(10)]


@pytest.mark.parametrize("name", ["iris", "imdb_reviews"])
def test_a_dataset_that_is_not_image_classification_is_one_clear_line(tmp_path, name):
    with tfds.testing.mock_data(num_examples=5):
        with pytest.raises(
            PipelineError, match=f"tfds dataset '{name}' is not image classification"
        ) as error:
            prepare_tfds(tmp_path / "prepared", 48, [0.8, 0.1, 0.1], name=name)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "prepared").exists()


def test_tfds_load_failure_is_one_clear_line(tmp_path):
    with pytest.raises(PipelineError, match="could not load tfds dataset 'no_such_dataset'") as error:
        prepare_tfds(tmp_path / "prepared", 48, [0.8, 0.1, 0.1], name="no_such_dataset")
    assert "\n" not in str(error.value)


def test_offline_the_default_dataset_fails_in_seconds_with_what_to_do(tmp_path):
    # A proxy that refuses every connection: offline on any machine, as tfds's
    # own requests see it. Without the probe tfds retries for minutes here.
    write_params(tmp_path / "params.yaml", data__tfds_dir=str(tmp_path / "tfds"))
    offline = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "stages" / "prepare.py")],
        cwd=tmp_path,
        env=offline,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - start
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: could not download tfds dataset 'cats_vs_dogs': download.microsoft.com cannot be reached "
        "(no network?). Use your own photos (data.source: folder, data.path: a folder with one "
        "sub-folder per class) or set data.tfds_dir to a TFDS data dir that holds 'cats_vs_dogs' "
        "already (`tfds build cats_vs_dogs --data_dir DIR` on a machine with internet access)"
    ]
    assert seconds <= 15, seconds
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
