"""The tfds source, offline: tfds.testing.mock_data stands in for the download
and generates random examples from cats_vs_dogs' real feature spec."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from transfer.data import SPLITS, prepare_tfds, read_meta, read_shards
from transfer.errors import PipelineError


def test_tfds_source_splits_resizes_and_names_classes(tmp_path, monkeypatch):
    calls = []
    with tfds.testing.mock_data(num_examples=50):
        mocked_load = tfds.load

        def recording_load(*args, **kwargs):
            calls.append((args, kwargs))
            return mocked_load(*args, **kwargs)

        monkeypatch.setattr(tfds, "load", recording_load)
        counts, skipped = prepare_tfds(tmp_path / "prepared", 48, [0.7, 0.2, 0.1])
    assert calls == [
        (
            ("cats_vs_dogs",),
            {
                "split": ["train[:70%]", "train[70%:90%]", "train[90%:]"],
                "as_supervised": True,
                "with_info": True,
            },
        )
    ]
    meta = read_meta(tmp_path / "prepared")
    assert meta["class_names"] == ["cat", "dog"]
    assert meta["source"] == "tfds:cats_vs_dogs"
    assert skipped == []
    totals = {split: sum(counts[split].values()) for split in SPLITS}
    # The mock ignores slicing and gives num_examples for each split.
    assert totals == {"train": 50, "validation": 50, "test": 50}
    for split in SPLITS:
        images, labels, ids = next(read_shards(tmp_path / "prepared", split))
        assert images.shape == (totals[split], 48, 48, 3) and images.dtype == np.uint8
        assert set(labels) <= {0, 1}
    assert str(ids[0]) == "train[90%:]#0"


def test_tfds_load_failure_is_one_clear_line(tmp_path):
    with pytest.raises(PipelineError, match="could not load tfds dataset 'no_such_dataset'") as error:
        prepare_tfds(tmp_path / "prepared", 48, [0.8, 0.1, 0.1], name="no_such_dataset")
    assert "\n" not in str(error.value)
