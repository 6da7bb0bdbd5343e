import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import high_bit_depth_twins, make_image, make_image_folder
from transfer.core.errors import PipelineError
from transfer.data.images import load_image
from transfer.data.shards import SPLITS, read_meta, read_shards
from transfer.data.sources.folder import list_folder, prepare_folder, split_key, split_of
from transfer.data.sources.tfds import tfds_split_names

FRACTIONS = [0.8, 0.1, 0.1]


def test_split_key_is_stable_and_seeded():
    assert split_key("cats/1.jpg", 42) == split_key("cats/1.jpg", 42)
    assert split_key("cats/1.jpg", 42) != split_key("cats/1.jpg", 43)
    assert 0 <= split_key("cats/1.jpg", 42) < 1


def test_split_fractions_are_followed_on_many_files():
    splits = [split_of(split_key(f"x/{index}.jpg", 0), FRACTIONS) for index in range(10_000)]
    shares = {split: splits.count(split) / len(splits) for split in SPLITS}
    assert shares["train"] == pytest.approx(0.8, abs=0.02)
    assert shares["validation"] == pytest.approx(0.1, abs=0.02)
    assert shares["test"] == pytest.approx(0.1, abs=0.02)


def test_tfds_split_names_follow_data_split():
    assert tfds_split_names([0.8, 0.1, 0.1]) == ["train[:80%]", "train[80%:90%]", "train[90%:]"]
    assert tfds_split_names([0.7, 0.2, 0.1]) == ["train[:70%]", "train[70%:90%]", "train[90%:]"]
    with pytest.raises(PipelineError, match="whole percents"):
        tfds_split_names([0.805, 0.095, 0.1])


def test_list_folder_labels_by_parent_folder_and_lists_what_it_skips(tmp_path):
    make_image(tmp_path / "train" / "cats" / "a.jpg", (200, 0, 0))
    make_image(tmp_path / "validation" / "cats" / "b.jpg", (200, 0, 0))
    make_image(tmp_path / "dogs" / "c.jpg", (0, 0, 200))
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / "dogs" / ".DS_Store").write_text("")
    make_image(tmp_path / ".git" / "dogs" / "d.jpg", (0, 0, 200))
    images, skipped = list_folder(tmp_path)
    assert sorted(images) == [
        ("dogs/c.jpg", "dogs"),
        ("train/cats/a.jpg", "cats"),
        ("validation/cats/b.jpg", "cats"),
    ]
    assert dict(skipped) == {
        "README.txt": "not inside a class folder",
        "dogs/.DS_Store": "hidden file",
        ".git/dogs/d.jpg": "inside a hidden folder",
    }


@pytest.mark.parametrize(
    "mode, fmt, suffix",
    [
        ("RGB", "JPEG", ".jpg"),
        ("L", "PNG", ".png"),
        ("RGBA", "PNG", ".png"),
        ("CMYK", "JPEG", ".jpg"),
        ("P", "GIF", ".gif"),
        ("RGB", "BMP", ".bmp"),
        ("RGB", "WEBP", ".webp"),
    ],
)
def test_load_image_converts_any_common_image_to_rgb_at_size(tmp_path, mode, fmt, suffix):
    path = make_image(tmp_path / f"image{suffix}", (200, 60, 60), size=(50, 30), mode=mode, fmt=fmt)
    image = load_image(path, 24)
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8
    if mode in ("RGB", "RGBA", "CMYK", "P"):
        assert image[..., 0].mean() > image[..., 2].mean() + 50  # still red


@pytest.mark.parametrize("name", ["gray16_png", "gray16_tiff", "rgb16_png"])
def test_16_bit_images_are_scaled_to_8_bits_not_clipped(name):
    # What prepare and predict both decode with: a 16-bit file gives its 8-bit twin's pixels.
    sixteen, eight = high_bit_depth_twins()[name]
    image = load_image(io.BytesIO(sixteen), 40)
    np.testing.assert_array_equal(image, load_image(io.BytesIO(eight), 40))
    assert image.mean() < 200  # not the white that clipping made


def test_32_bit_float_images_are_unreadable_not_guessed():
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(buffer, format="TIFF")
    with pytest.raises(ValueError, match="32-bit floating-point"):
        load_image(io.BytesIO(buffer.getvalue()), 8)


def test_load_image_applies_exif_orientation(tmp_path):
    # A wide image whose EXIF says "rotate 90": it must come out tall, i.e. top half != bottom half pattern.
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=100)
    upright = load_image(tmp_path / "rotated.jpg", 20)
    # After rotating clockwise, the white left half becomes the top half.
    assert upright[:8].mean() > 200 and upright[-8:].mean() < 50


def test_unreadable_files_raise_for_the_caller_to_skip(tmp_path):
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    good = make_image(tmp_path / "good.jpg", (1, 2, 3), size=(64, 64))
    (tmp_path / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    for name in ("text.jpg", "empty.jpg", "truncated.jpg"):
        with pytest.raises((OSError, ValueError, SyntaxError)):
            load_image(tmp_path / name, 16)


def test_prepare_folder_writes_shards_meta_and_counts(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    (root / "dogs" / "broken.jpg").write_text("not really a jpeg")
    counts, skipped = prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=1)

    meta = read_meta(tmp_path / "prepared")
    assert meta["class_names"] == ["cats", "dogs"] and meta["image_size"] == 32
    assert skipped == [
        ("dogs/broken.jpg", f"unreadable: cannot identify image file '{root / 'dogs' / 'broken.jpg'}'")
    ]
    assert sum(sum(split.values()) for split in counts.values()) == 60  # nothing lost
    ids = []
    for split in SPLITS:
        shards = list(read_shards(tmp_path / "prepared", split))
        images = np.concatenate([images for images, _, _ in shards])
        labels = np.concatenate([labels for _, labels, _ in shards])
        ids += [str(i) for _, _, split_ids in shards for i in split_ids]
        assert images.shape[1:] == (32, 32, 3) and images.dtype == np.uint8
        assert meta["splits"][split]["count"] == len(images) == sum(counts[split].values())
        for class_index, class_name in enumerate(meta["class_names"]):
            assert np.sum(labels == class_index) == counts[split][class_name]
        # Labels match folders: reddish cats, bluish dogs.
        red_minus_blue = images[..., 0].mean(axis=(1, 2)) - images[..., 2].mean(axis=(1, 2))
        assert np.all((red_minus_blue > 0) == (labels == 0))
    assert len(ids) == len(set(ids)) == 60


def test_adding_photos_never_moves_existing_ones(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    prepare_folder(root, tmp_path / "before", 32, FRACTIONS, seed=3)
    make_image_folder(tmp_path / "more", per_class=10)
    for path in (tmp_path / "more").rglob("*.jpg"):
        path.rename(root / path.parent.name / f"new-{path.name}")
    prepare_folder(root, tmp_path / "after", 32, FRACTIONS, seed=3)

    def split_by_id(prepared):
        return {str(i): split for split in SPLITS for _, _, ids in read_shards(prepared, split) for i in ids}

    before, after = split_by_id(tmp_path / "before"), split_by_id(tmp_path / "after")
    assert len(after) == 80
    assert all(after[image_id] == split for image_id, split in before.items())


def test_same_input_gives_identical_shards(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=16)
    prepare_folder(root, tmp_path / "a", 32, FRACTIONS, seed=0)
    prepare_folder(root, tmp_path / "b", 32, FRACTIONS, seed=0)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_shards_hold_a_bounded_number_of_images(tmp_path, monkeypatch):
    monkeypatch.setattr("transfer.data.shards.SHARD_BYTES", 32 * 32 * 3 * 7)
    root = make_image_folder(tmp_path / "images", per_class=20)
    prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)
    meta = json.loads((tmp_path / "prepared" / "meta.json").read_text())
    assert len(meta["splits"]["train"]["shards"]) >= 4
    assert all(len(labels) <= 7 for _, labels, _ in read_shards(tmp_path / "prepared", "train"))
    # Images wait for their shard in a file, not in memory; none is left behind.
    assert sorted(path.name for path in (tmp_path / "prepared").iterdir()) == sorted(
        ["meta.json", *(name for split in meta["splits"].values() for name in split["shards"])]
    )


def test_prepare_folder_needs_two_classes(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=5, classes=("cats",))
    with pytest.raises(PipelineError, match="at least two class folders, found 1"):
        prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)


def test_prepare_folder_takes_any_number_of_classes(tmp_path):
    classes = ("daisy", "roses", "tulips")
    root = make_image_folder(tmp_path / "images", per_class=12, classes=classes)
    counts, _ = prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)
    meta = json.loads((tmp_path / "prepared" / "meta.json").read_text())
    assert meta["class_names"] == list(classes)
    labels = np.concatenate([labels for _, labels, _ in read_shards(tmp_path / "prepared", "train")])
    assert set(labels) == {0, 1, 2}
    assert meta["splits"]["train"]["class_counts"] == [counts["train"][name] for name in classes]
    assert np.bincount(labels).tolist() == meta["splits"]["train"]["class_counts"]


def test_prepare_folder_missing_path(tmp_path):
    with pytest.raises(PipelineError, match="data.path does not exist"):
        prepare_folder(tmp_path / "nowhere", tmp_path / "prepared", 32, FRACTIONS, seed=0)


def test_too_few_images_for_a_split_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=1)
    with pytest.raises(PipelineError, match="too few"):
        prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)


def test_image_dataset_streams_shuffled_batches(tmp_path):
    from transfer.training.datasets import image_dataset
    from transfer.training.recipe import seed_everything

    root = make_image_folder(tmp_path / "images", per_class=30)
    prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)
    count = read_meta(tmp_path / "prepared")["splits"]["train"]["count"]

    def labels_of(dataset):
        return np.concatenate([labels.numpy() for _, labels in dataset])

    ordered = image_dataset(tmp_path / "prepared", "train", batch_size=8)
    images, labels = next(iter(ordered))
    assert images.shape == (8, 32, 32, 3) and images.dtype.name == "uint8" and labels.dtype.name == "float32"
    assert len(labels_of(ordered)) == count

    def shuffled_labels(seed):
        seed_everything(seed)  # as each stage does first
        return labels_of(image_dataset(tmp_path / "prepared", "train", 8, shuffle_buffer=100, seed=seed))

    shuffled = shuffled_labels(5)
    assert sorted(shuffled) == sorted(labels_of(ordered))
    assert not np.array_equal(shuffled, labels_of(ordered))
    assert np.array_equal(shuffled, shuffled_labels(5))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_shards_are_detected(tmp_path, damage):
    root = make_image_folder(tmp_path / "images", per_class=16)
    prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)
    path = tmp_path / "prepared" / read_meta(tmp_path / "prepared")["splits"]["train"]["shards"][0]
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x01  # one bit of one pixel
    path.write_bytes(bytes(data))
    with pytest.raises(PipelineError, match=f"corrupted shard {path}"):
        list(read_shards(tmp_path / "prepared", "train"))


def test_a_folder_of_bad_files_is_handled_and_nothing_is_lost(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=16)
    cats, dogs = root / "cats", root / "dogs"
    (cats / "zero.jpg").write_bytes(b"")
    (cats / "text.jpg").write_text("not an image")
    good = make_image(tmp_path / "good.jpg", (200, 60, 60), size=(64, 64))
    (cats / "truncated.jpg").write_bytes(good.read_bytes()[:150])
    used = {
        "cats/gray.png": make_image(cats / "gray.png", (200, 60, 60), mode="L", fmt="PNG"),
        "cats/cmyk.jpg": make_image(cats / "cmyk.jpg", (200, 60, 60), mode="CMYK", fmt="JPEG"),
        "dogs/alpha.png": make_image(dogs / "alpha.png", (60, 60, 200), mode="RGBA", fmt="PNG"),
        "dogs/anim.gif": make_image(dogs / "anim.gif", (60, 60, 200), mode="P", fmt="GIF"),
        "dogs/b.bmp": make_image(dogs / "b.bmp", (60, 60, 200), fmt="BMP"),
        "dogs/w.webp": make_image(dogs / "w.webp", (60, 60, 200), fmt="WEBP"),
    }
    # 20,000 x 20,000: refused from its header, before any pixel is decoded.
    Image.new("L", (20_000, 20_000)).save(cats / "huge.png", optimize=False)
    (dogs / ".hidden.jpg").write_bytes(good.read_bytes())
    (dogs / "loop").symlink_to(dogs, target_is_directory=True)
    (root / "birds").mkdir()
    exif_image = Image.new("RGB", (40, 20), (200, 60, 60))
    exif = exif_image.getexif()
    exif[0x0112] = 6
    exif_image.save(cats / "rotated.jpg", exif=exif.tobytes())
    used["cats/rotated.jpg"] = cats / "rotated.jpg"

    counts, skipped = prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)

    reasons = dict(skipped)
    assert reasons["cats/zero.jpg"].startswith("unreadable: cannot identify image file")
    assert reasons["cats/text.jpg"].startswith("unreadable: cannot identify image file")
    assert "truncated" in reasons["cats/truncated.jpg"].lower()
    assert "decompression bomb" in reasons["cats/huge.png"].lower()
    assert reasons["dogs/.hidden.jpg"] == "hidden file"
    assert reasons["birds/"] == "empty folder"
    ids = {
        str(i)
        for split in SPLITS
        for _, _, split_ids in read_shards(tmp_path / "prepared", split)
        for i in split_ids
    }
    assert set(used) <= ids
    assert not any("loop" in image_id for image_id in ids)  # the symlink loop is not followed
    files = [path for path in root.rglob("*") if path.is_file() and "loop" not in path.parts]
    assert len(ids) + len([path for path in reasons if not path.endswith("/")]) == len(files)  # nothing lost
    assert sum(sum(split.values()) for split in counts.values()) == len(ids)


def test_class_folders_differing_only_in_case_stop_with_one_line(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=6, classes=("cats", "Cats", "dogs"))
    with pytest.raises(PipelineError, match="class folders Cats and cats differ only in case"):
        prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)


def test_a_class_too_small_for_the_split_stops_with_one_line(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    kept = [
        path
        for path in sorted((root / "dogs").iterdir())
        if split_of(split_key(f"dogs/{path.name}", 0), FRACTIONS) != "train"
    ]
    for path in (root / "dogs").iterdir():
        if path not in kept[:2]:
            path.unlink()
    with pytest.raises(PipelineError, match=r"class 'dogs' has 0 photos in the train split \(2 in all\)"):
        prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)


def test_fixed_batches_cross_shards_and_pad_the_last(tmp_path, monkeypatch):
    from transfer.data.shards import fixed_batches

    monkeypatch.setattr("transfer.data.shards.SHARD_BYTES", 32 * 32 * 3 * 7)  # 7 images per shard
    root = make_image_folder(tmp_path / "images", per_class=20)
    prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)
    shards = list(read_shards(tmp_path / "prepared", "train"))
    expected_images = np.concatenate([shard[0] for shard in shards])
    expected_labels = np.concatenate([shard[1] for shard in shards])

    batches = list(fixed_batches(tmp_path / "prepared", "train", batch_size=5))
    assert all(images.shape == (5, 32, 32, 3) for images, _, _, _ in batches)
    counts = [count for _, _, _, count in batches]
    assert counts[:-1] == [5] * (len(batches) - 1) and sum(counts) == len(expected_images)
    np.testing.assert_array_equal(
        np.concatenate([batch[0][: batch[3]] for batch in batches]), expected_images
    )
    np.testing.assert_array_equal(np.concatenate([batch[1] for batch in batches]), expected_labels)
    expected_ids = [str(i) for shard in shards for i in shard[2]]
    assert [str(i) for batch in batches for i in batch[2]] == expected_ids
    assert not batches[-1][0][counts[-1] :].any()  # zero padding


def test_a_class_missing_from_the_test_split_is_refused_before_anything_is_written(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    for path in (root / "dogs").iterdir():
        if split_of(split_key(f"dogs/{path.name}", 0), FRACTIONS) == "test":
            path.unlink()
    left = len(list((root / "dogs").iterdir()))
    message = rf"class 'dogs' has 0 photos in the test split \({left} in all\): every split needs at least 1"
    with pytest.raises(PipelineError, match=message):
        prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0)
    assert not (tmp_path / "prepared").exists()


def test_an_exclusion_that_empties_a_split_of_a_class_is_refused(tmp_path):
    from transfer.data.exclusions import Exclusions

    root = make_image_folder(tmp_path / "images", per_class=30)
    in_test = [
        f"dogs/{path.name}"
        for path in sorted((root / "dogs").iterdir())
        if split_of(split_key(f"dogs/{path.name}", 0), FRACTIONS) == "test"
    ]
    exclusions = Exclusions({path: "cats" for path in in_test})  # all moved to the other class
    with pytest.raises(PipelineError, match="class 'dogs' has 0 photos in the test split"):
        prepare_folder(root, tmp_path / "prepared", 32, FRACTIONS, seed=0, exclusions=exclusions)
