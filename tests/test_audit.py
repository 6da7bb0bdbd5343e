"""The data audit: nearest neighbours, duplicates, label issues, exclusions, and the stage."""

import csv

import keras
import numpy as np
import pytest
from PIL import Image

from tests.conftest import default_params, make_image, make_image_folder, names_in_every_split, write_params
from tests.test_stages import error_lines, run_stage
from transfer.audit.duplicates import (
    PixelMatcher,
    crop_thumbnails,
    exact_pairs,
    groups_of,
    pixel_digest,
    thumbnail,
)
from transfer.audit.findings import audit, duplicate_rows, label_issue_rows, summary
from transfer.audit.label_issues import check_auditable, find_label_issues, out_of_sample_probabilities
from transfer.core.errors import PipelineError
from transfer.core.io import file_sha256, read_csv
from transfer.core.records import read_record
from transfer.data.exclusions import Decision, Exclusions, update_exclusions
from transfer.data.features import extract_all
from transfer.data.neighbours import nearest_neighbours
from transfer.data.shards import read_shards
from transfer.data.sources.folder import prepare_folder
from transfer.inference.runners import KerasRunner

AUDIT = default_params()["audit"]
SIZE = 48


def test_nearest_neighbours_match_all_pairs_and_skip_the_photo_itself(monkeypatch):
    monkeypatch.setattr("transfer.data.neighbours.BLOCK_ROWS", 7)  # several blocks
    features = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    indices, similarities = nearest_neighbours(features, 3)

    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    expected = unit @ unit.T
    np.fill_diagonal(expected, -np.inf)
    np.testing.assert_array_equal(indices, np.argsort(-expected, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(similarities, np.take_along_axis(expected, indices, axis=1), rtol=1e-5)
    assert not (indices == np.arange(40)[:, None]).any()


def test_nearest_neighbours_break_ties_by_index():
    features = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1]], np.float32)
    indices, _ = nearest_neighbours(features, 3)
    assert indices[0].tolist() == [1, 2, 3] and indices[3].tolist() == [0, 1, 2]


def textured(seed, size=SIZE * 2):
    """A photo-like image: smooth random shapes, unlike any other seed's."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


def prepared(image):
    """What prepare makes of a photo: resized to SIZE x SIZE."""
    return np.asarray(Image.fromarray(image).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def altered(image, change):
    if change == "resize":
        small = Image.fromarray(image).resize((len(image) * 4 // 5,) * 2, Image.Resampling.BILINEAR)
        return np.asarray(small)
    if change == "crop":
        cut = len(image) // 10
        return image[cut // 2 : len(image) - cut // 2, : len(image) - cut]
    if change == "recolour":
        return np.clip(image.astype(np.int16) * 0.8 + 30, 0, 255).astype(np.uint8)
    raise ValueError(change)


def pixel_score(first, second):
    matcher = PixelMatcher(np.stack([thumbnail(first), thumbnail(second)]), {(0, 1): 0.9})
    matcher.feed(0, first)
    matcher.feed(1, second)
    return matcher.scores[(0, 1)]


@pytest.mark.parametrize("change", ["resize", "crop", "recolour"])
def test_an_altered_copy_scores_above_the_duplicate_threshold(change):
    original = textured(1)
    score = pixel_score(prepared(original), prepared(altered(original, change)))
    assert score >= AUDIT["duplicate_similarity"], score


def test_distinct_photos_score_below_the_duplicate_threshold():
    scores = [pixel_score(prepared(textured(seed)), prepared(textured(seed + 1))) for seed in range(10)]
    assert max(scores) < AUDIT["duplicate_similarity"], scores


def test_thumbnails_ignore_brightness_and_crops_include_the_whole_image():
    image = prepared(textured(2))
    brighter = np.clip(image.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    assert float(thumbnail(image) @ thumbnail(brighter)) > 0.99
    crops = crop_thumbnails(image)
    np.testing.assert_allclose(crops[0], thumbnail(image))
    np.testing.assert_allclose(np.linalg.norm(crops, axis=1), 1.0, rtol=1e-5)


def test_exact_duplicates_are_identical_pixels_and_groups_join_chains():
    image = prepared(textured(3))
    digests = [pixel_digest(image), pixel_digest(prepared(textured(4))), pixel_digest(image.copy())]
    assert exact_pairs(digests) == [(0, 2)]
    assert groups_of(7, [(0, 2), (5, 6), (2, 4)]) == [[0, 2, 4], [5, 6]]
    assert groups_of(3, []) == []


def test_exclusions_drop_relabel_and_count(tmp_path):
    path = tmp_path / "exclusions.csv"
    path.write_text("path,action\ndogs/1.jpg,drop\ncats/2.jpg,dogs\ncats/2.jpg,dogs\n")
    exclusions = Exclusions.read(path)
    exclusions.bind(["cats", "dogs"])
    assert exclusions.apply("dogs/1.jpg", 1) is None
    assert exclusions.apply("cats/2.jpg", 0) == 1
    assert exclusions.apply("cats/3.jpg", 0) == 0
    assert exclusions.applied == {"drop": 1, "relabel": 1}
    exclusions.check_all_applied()


def test_no_exclusions_file_changes_nothing(tmp_path):
    exclusions = Exclusions.read(tmp_path / "missing.csv")
    exclusions.bind(["cats", "dogs"])
    assert exclusions.apply("cats/1.jpg", 0) == 0
    exclusions.check_all_applied()


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,what\n", "the header must be `path,action,reason,sha256` \\(or `path,action`\\)"),
        ("path,action\ncats/1.jpg,\n", "line 2: needs a path and an action"),
        ("path,action\ncats/1.jpg,drop\ncats/1.jpg,dogs\n", "line 3: cats/1.jpg is listed twice"),
        ("path,action\ncats/1.jpg,wolves\n", "cats/1.jpg -> 'wolves' is neither drop, keep nor a class"),
    ],
)
def test_bad_exclusions_are_a_clear_error(tmp_path, text, message):
    path = tmp_path / "exclusions.csv"
    path.write_text(text)
    with pytest.raises(PipelineError, match=message):
        Exclusions.read(path).bind(["cats", "dogs"])


def test_an_excluded_photo_missing_from_the_dataset_is_named(tmp_path):
    path = tmp_path / "exclusions.csv"
    path.write_text("path,action\ncats/typo.jpg,drop\n")
    exclusions = Exclusions.read(path)
    exclusions.bind(["cats", "dogs"])
    with pytest.raises(PipelineError, match="lists a photo that is not in the dataset: cats/typo.jpg"):
        exclusions.check_all_applied()


def test_listed_photos_may_be_absolute_or_project_relative_inside_data_path(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "project" / "photos", per_class=3)
    monkeypatch.chdir(tmp_path / "project")
    path = tmp_path / "exclusions.csv"
    lines = [f"{root / 'cats' / '000.jpg'},drop", "photos/dogs/001.jpg,cats", "cats/002.jpg,drop"]
    path.write_text("path,action\n" + "\n".join(lines) + "\n")
    exclusions = Exclusions.read(path, data_path="photos")
    assert exclusions.actions == {"cats/000.jpg": "drop", "dogs/001.jpg": "cats", "cats/002.jpg": "drop"}
    (tmp_path / "elsewhere.jpg").write_bytes(b"")
    path.write_text(f"path,action\n{tmp_path / 'elsewhere.jpg'},drop\n")
    with pytest.raises(PipelineError, match=r"line 2: .*elsewhere.jpg is not inside data.path \(photos\)"):
        Exclusions.read(path, data_path="photos")


def test_prepare_drops_and_relabels_listed_photos(tmp_path, image_folder):
    path = tmp_path / "exclusions.csv"
    path.write_text("path,action\ncats/000.jpg,drop\ndogs/001.jpg,cats\n")
    exclusions = Exclusions.read(path)
    prepare_folder(image_folder, tmp_path / "prepared", 32, [0.8, 0.1, 0.1], seed=0, exclusions=exclusions)
    labels = {}
    for split in ("train", "validation", "test"):
        for _, shard_labels, ids in read_shards(tmp_path / "prepared", split):
            labels.update(zip([str(example_id) for example_id in ids], shard_labels.tolist()))
    assert len(labels) == 39 and "cats/000.jpg" not in labels
    assert labels["dogs/001.jpg"] == 0 and labels["dogs/002.jpg"] == 1
    assert exclusions.applied == {"drop": 1, "relabel": 1}


def blobs(per_class=60, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(classes, 16))
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(size=(len(labels), 16)), labels


def test_flipped_labels_top_the_list_of_label_issues():
    features, labels = blobs()
    flipped = np.random.default_rng(1).choice(len(labels), 9, replace=False)
    noisy = labels.copy()
    noisy[flipped] = (noisy[flipped] + 1) % 3
    probabilities = out_of_sample_probabilities(features, noisy, 5, 0, AUDIT["regularization"])
    assert probabilities.shape == (180, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    ranked, quality = find_label_issues(noisy, probabilities)
    assert set(ranked[:9].tolist()) == set(flipped.tolist())
    assert quality[flipped].max() < np.delete(quality, flipped).min()


def test_clean_labels_give_few_label_issues():
    features, labels = blobs()
    ranked, _ = find_label_issues(
        labels, out_of_sample_probabilities(features, labels, 5, 0, AUDIT["regularization"])
    )
    assert len(ranked) <= 2


def test_a_class_too_small_to_audit_is_one_clear_line():
    with pytest.raises(PipelineError, match="too few photos to audit: class 'dogs' has 3 photos"):
        check_auditable([0] * 10 + [1] * 3, ["cats", "dogs"], folds=5)


def pooled_pixels():
    """A real Keras extractor whose features are the image at 8 x 8: colour tells the classes apart."""
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Flatten()(keras.layers.AveragePooling2D(4)(inputs)))


def prepare_and_extract(root, workdir, per_class=None):
    prepare_folder(root, workdir / "data" / "prepared", 32, [0.6, 0.2, 0.2], seed=0)
    (workdir / "data" / "features").mkdir()
    extract_all(
        KerasRunner(pooled_pixels()),
        workdir / "data" / "prepared",
        workdir / "data" / "features",
        batch_size=16,
    )
    return workdir / "data" / "prepared", workdir / "data" / "features"


def plant_a_copied_cat(root):
    """cats/007.jpg, red with faint shapes in it, and its copy resized into the dogs' folder:
    dogs/copy-of-cat.jpg (a near-duplicate and a label error); returns the pixels."""
    red_shapes = (textured(7) * 0.1 + np.array([180, 54, 54])).astype(np.uint8)
    Image.fromarray(red_shapes).save(root / "cats" / "007.jpg", quality=95)
    Image.fromarray(red_shapes).resize((77, 58)).save(root / "dogs" / "copy-of-cat.jpg", quality=70)
    return red_shapes


def test_audit_finds_a_copied_photo_and_the_wrong_folder(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    # Faint shapes, not pixel noise: noise does not survive a resize.
    plant_a_copied_cat(root)
    prepared_dir, features_dir = prepare_and_extract(root, tmp_path)

    result = audit(prepared_dir, features_dir, AUDIT, seed=0)
    report = summary(result)

    groups = {}
    for row in duplicate_rows(result):
        groups.setdefault(row["group"], set()).add(row["path"])
    assert {"cats/007.jpg", "dogs/copy-of-cat.jpg"} in groups.values()
    assert report["near_duplicate_groups"] == len(groups) and report["exact_duplicate_groups"] == 0
    issues = label_issue_rows(result)
    assert issues[0]["path"] == "dogs/copy-of-cat.jpg", issues[:3]
    assert issues[0]["given"] == "dogs" and issues[0]["suggested"] == "cats"
    assert sum(report["photos"].values()) == 61
    assert report["classes"] == {"cats": 30, "dogs": 31} and report["imbalance_ratio"] == pytest.approx(
        31 / 30, 1e-3
    )


def test_the_audit_stage_writes_its_lists_and_figures(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    prepare_and_extract(root, tmp_path)
    write_params(tmp_path / "params.yaml", data__source="folder", data__path="images")
    result = run_stage("audit", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = read_record("audit", tmp_path)
    assert report["thresholds"]["duplicate_similarity"] == AUDIT["duplicate_similarity"]
    assert sum(report["photos"].values()) == 60 and set(report["leaks"]) == {
        "train_validation",
        "train_test",
        "validation_test",
    }
    with open(tmp_path / "metrics" / "label_issues.csv") as file:
        assert csv.DictReader(file).fieldnames == [
            "rank", "path", "split", "given", "suggested", "suggested_probability", "label_quality",
        ]  # fmt: skip
    for name in ("duplicates.csv", "outliers.csv"):
        assert (tmp_path / "metrics" / name).is_file()
    for name in ("duplicates.png", "label_issues.png"):
        with Image.open(tmp_path / "plots" / name) as image:
            assert image.width > 200
    assert "audit:" in result.stdout and "likely label errors" in result.stdout


def test_a_dataset_too_small_to_audit_is_one_line_and_writes_nothing(tmp_path):
    # Four photos of each class, one in each split at least (prepare's rule), too few for 5 folds.
    for class_name, color in (("cats", (200, 60, 60)), ("dogs", (60, 60, 200))):
        for name in names_in_every_split(class_name, 4, [0.6, 0.2, 0.2], seed=0):
            make_image(tmp_path / "images" / class_name / name, color, noise_seed=len(name))
    prepare_and_extract(tmp_path / "images", tmp_path)
    write_params(tmp_path / "params.yaml", data__source="folder", data__path="images")
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    result = run_stage("audit", tmp_path)
    assert result.returncode == 1
    assert len(error_lines(result)) == 1 and "too few photos to audit" in error_lines(result)[0], (
        result.stderr
    )
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before


def test_prepare_with_a_stale_exclusion_is_one_line_and_writes_nothing(tmp_path):
    make_image_folder(tmp_path / "images", per_class=14)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "exclusions.csv").write_text("path,action\ncats/gone.jpg,drop\n")
    write_params(tmp_path / "params.yaml", data__source="folder", data__path="images")
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 1
    assert error_lines(result) == [
        "error: data/exclusions.csv lists a photo that is not in the dataset: cats/gone.jpg"
    ], result.stderr
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before


def test_photos_a_person_kept_are_left_out_of_the_lists_until_their_file_changes(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    red_shapes = plant_a_copied_cat(root)
    prepared_dir, features_dir = prepare_and_extract(root, tmp_path)
    copy, original = "dogs/copy-of-cat.jpg", "cats/007.jpg"
    update_exclusions(
        {photo: Decision("keep", sha256=file_sha256(root / photo)) for photo in (copy, original)},
        tmp_path / "exclusions.csv",
    )
    exclusions = Exclusions.read(tmp_path / "exclusions.csv")

    def listed(reviewed):
        result = audit(prepared_dir, features_dir, AUDIT, seed=0, reviewed=reviewed)
        rows = label_issue_rows(result) + duplicate_rows(result)
        return {row["path"] for row in rows}, summary(result)["reviewed_not_listed"]

    assert {copy, original} <= listed(set())[0]
    paths, hidden = listed(exclusions.reviewed(lambda photo: root / photo))
    assert copy not in paths and original not in paths and hidden == 2
    # The copy's file changes (the same path, new content): it is flagged again, and its group
    # with it (not every member is a kept photo any more).
    Image.fromarray(red_shapes).resize((76, 57)).save(root / copy, quality=70)
    paths, hidden = listed(exclusions.reviewed(lambda photo: root / photo))
    assert copy in paths and original in paths


def test_the_audit_stage_reads_the_keep_decisions_of_data_exclusions(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=30)
    plant_a_copied_cat(root)
    prepare_and_extract(root, tmp_path)
    write_params(tmp_path / "params.yaml", data__source="folder", data__path="images")
    assert run_stage("audit", tmp_path).returncode == 0
    first = read_csv(tmp_path / "metrics" / "label_issues.csv")[0]["path"]
    assert first == "dogs/copy-of-cat.jpg"
    (tmp_path / "data" / "exclusions.csv").write_text(
        f"path,action,reason,sha256\n{first},keep,,{file_sha256(root / first)}\n"
    )
    result = run_stage("audit", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert first not in {row["path"] for row in read_csv(tmp_path / "metrics" / "label_issues.csv")}
    assert read_record("audit", tmp_path)["reviewed_not_listed"] == 1
