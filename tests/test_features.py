import numpy as np
import pytest

from tests.conftest import FEATURE_SIZE, make_image_folder
from transfer.core.errors import PipelineError
from transfer.data.features import extract_all, load_features
from transfer.data.shards import read_shards
from transfer.data.sources.folder import prepare_folder
from transfer.inference.runners import KerasRunner
from transfer.models.networks import build_base, build_feature_extractor


def test_extract_writes_the_extractors_features_for_every_split(tmp_path, monkeypatch):
    monkeypatch.setattr("transfer.data.shards.SHARD_BYTES", 32 * 32 * 3 * 10)  # several shards per split
    root = make_image_folder(tmp_path / "images", per_class=25)
    prepare_folder(root, tmp_path / "prepared", 32, [0.6, 0.2, 0.2], seed=0)
    extractor = build_feature_extractor(build_base(32, "none"))
    (tmp_path / "features").mkdir()

    counts = extract_all(KerasRunner(extractor), tmp_path / "prepared", tmp_path / "features", batch_size=8)

    assert sum(counts.values()) == 50
    for split, count in counts.items():
        features, labels = load_features(tmp_path / "features", split)
        assert features.shape == (count, FEATURE_SIZE) and features.dtype == np.float32
        images = np.concatenate([images for images, _, _ in read_shards(tmp_path / "prepared", split)])
        expected_labels = np.concatenate(
            [labels for _, labels, _ in read_shards(tmp_path / "prepared", split)]
        )
        np.testing.assert_array_equal(labels, expected_labels)
        np.testing.assert_allclose(features, extractor.predict(images, verbose=0), rtol=1e-4, atol=1e-5)


def test_missing_features_are_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="features not found: .*train_features.npy"):
        load_features(tmp_path, "train")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_features_are_detected(tmp_path, damage):
    (tmp_path / "features").mkdir()
    np.save(tmp_path / "features" / "train_features.npy", np.ones((10, FEATURE_SIZE), np.float32))
    np.save(tmp_path / "features" / "train_labels.npy", np.ones(10, np.float32))
    from transfer.core.io import file_sha256
    from transfer.data.features import CHECKSUMS_FILE

    checksums = {
        name: file_sha256(tmp_path / "features" / name) for name in ("train_features.npy", "train_labels.npy")
    }
    (tmp_path / "features" / CHECKSUMS_FILE).write_text(__import__("json").dumps(checksums))
    load_features(tmp_path / "features", "train")  # intact: loads

    path = tmp_path / "features" / "train_features.npy"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-100] ^= 0x01  # one bit of one feature
    path.write_bytes(bytes(data))
    with pytest.raises(PipelineError, match=f"corrupted features file {path}: checksum mismatch"):
        load_features(tmp_path / "features", "train")


def test_extract_is_deterministic(tmp_path, shared_weights):
    root = make_image_folder(tmp_path / "images", per_class=14)
    prepare_folder(root, tmp_path / "prepared", 32, [0.6, 0.2, 0.2], seed=0)
    extractor = build_feature_extractor(build_base(32, str(shared_weights)))
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        extract_all(KerasRunner(extractor), tmp_path / "prepared", tmp_path / run, batch_size=4)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_features_are_written_as_np_save_writes_them_and_read_back_by_row_range(tmp_path):
    from transfer.data.features import FeatureRows

    prepared, out = tmp_path / "prepared", tmp_path / "features"
    prepare_folder(make_image_folder(tmp_path / "images"), prepared, 32, [0.5, 0.25, 0.25], seed=0)
    out.mkdir()
    extract_all(KerasRunner(build_feature_extractor(build_base(32, "none"))), prepared, out, 8)
    path = tmp_path / "features" / "train_features.npy"
    array = np.load(path)
    np.save(tmp_path / "reference.npy", array)
    assert path.read_bytes() == (tmp_path / "reference.npy").read_bytes()
    rows = FeatureRows(path)
    assert rows.shape == array.shape and rows.dtype == array.dtype and len(rows) == len(array)
    np.testing.assert_array_equal(rows[3:11], array[3:11])
    np.testing.assert_array_equal(rows[:], array)
    np.testing.assert_array_equal(np.asarray(rows), array)
