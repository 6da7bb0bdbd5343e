"""What to label next: the strategies, the pool, data/labels.csv, and prepare adding labelled photos."""

import numpy as np
import pytest

from tests.conftest import make_image, make_image_folder
from transfer.config.schema import SELECT_STRATEGIES
from transfer.core.errors import PipelineError
from transfer.data.pool import labelled_photos, pool_id, pool_listing, read_labels, update_labels
from transfer.data.shards import SPLITS, read_shards
from transfer.data.sources.folder import prepare_folder
from transfer.labelling.ranking import ranked_rows
from transfer.labelling.strategies import AUTO_TYPICAL_BELOW, STRATEGIES, margins, select


def blobs(seed=0, per_blob=30, blobs=4, width=8):
    """Features in well-separated blobs, and a probability table."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(blobs, width)) * 10
    features = np.concatenate([centre + rng.normal(size=(per_blob, width)) for centre in centres])
    probabilities = rng.dirichlet([1, 1, 1], size=len(features))
    return features, probabilities


def test_every_strategy_named_in_params_is_registered():
    assert tuple(STRATEGIES) == SELECT_STRATEGIES


@pytest.mark.parametrize("name", SELECT_STRATEGIES)
def test_a_strategy_picks_a_batch_of_distinct_photos_with_a_reason_each(name):
    features, probabilities = blobs()
    chosen, reasons = select(name, features, probabilities, labelled=50, batch=10, seed=0)
    assert len(set(chosen.tolist())) == 10 and len(reasons) == 10 and all(reasons)
    assert chosen.min() >= 0 and chosen.max() < len(features)
    again, _ = select(name, features, probabilities, labelled=50, batch=10, seed=0)
    assert again.tolist() == chosen.tolist()  # seeded


def test_margin_picks_the_smallest_margins_first():
    probabilities = np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3], [0.5, 0.5]])
    chosen, _ = select("margin", np.eye(4), probabilities, labelled=10, batch=2, seed=0)
    assert chosen.tolist() == [3, 1] and margins(probabilities)[3] == 0


def test_typical_takes_one_photo_from_each_blob():
    features, probabilities = blobs(blobs=4)
    chosen, _ = select("typical", features, probabilities, labelled=0, batch=4, seed=0)
    assert sorted(row // 30 for row in chosen) == [0, 1, 2, 3]


def test_diverse_spreads_the_uncertain_photos_over_blobs():
    features, _ = blobs(blobs=4)
    # Blob 0 the most uncertain: margin alone takes its photos only.
    margin = np.random.default_rng(1).uniform(0.0, 0.2, len(features)) + np.repeat([0.0, 0.3, 0.3, 0.3], 30)
    probabilities = np.stack([(1 + margin) / 2, (1 - margin) / 2], axis=1)
    assert {row // 30 for row in select("margin", features, probabilities, 100, 4, 0)[0]} == {0}
    chosen, _ = select("diverse", features, probabilities, labelled=100, batch=4, seed=0)
    assert sorted(row // 30 for row in chosen) == [0, 1, 2, 3]


def test_auto_takes_typical_photos_while_few_are_labelled_then_diverse_ones():
    features, probabilities = blobs()
    few = (AUTO_TYPICAL_BELOW - 1) * probabilities.shape[1]
    many = AUTO_TYPICAL_BELOW * probabilities.shape[1]
    assert select("auto", features, probabilities, few, 5, 0)[1][0].startswith("typical")
    assert select("auto", features, probabilities, many, 5, 0)[1][0].startswith("uncertain and unlike")


def test_rejected_photos_are_listed_apart_most_novel_first():
    features, probabilities = blobs()
    novelty = np.linspace(0, 1, len(features))
    paths = [f"p{row}.jpg" for row in range(len(features))]
    rows, unknown = ranked_rows(
        paths, features, probabilities, novelty, 0.5, ["a", "b", "c"], "margin", 5, 100, 0
    )
    assert (
        len(rows) == 5
        and all(row["known"] for row in rows)
        and [row["rank"] for row in rows] == [1, 2, 3, 4, 5]
    )
    assert all(float(row["novelty"]) <= 0.5 for row in rows)
    assert [row["path"] for row in unknown] == [
        f"p{row}.jpg" for row in range(len(features) - 1, -1, -1) if novelty[row] > 0.5
    ]


def pool_data(tmp_path, **photos):
    pool = tmp_path / "pool"
    for name in photos.get("names", ("a.jpg", "b.jpg", "sub/c.jpg")):
        make_image(pool / name, (200, 60, 60))
    return {"source": "folder", "path": str(tmp_path / "images"), "unlabeled": str(pool)}


def test_labels_name_pool_photos_and_classes(tmp_path):
    data = pool_data(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,class\na.jpg,cats\nsub/c.jpg,drop\n")
    assert read_labels(data, labels) == {"a.jpg": "cats", "sub/c.jpg": "drop"}
    assert labelled_photos(data, ["cats", "dogs"], labels) == [
        ("pool:a.jpg", "cats", tmp_path / "pool" / "a.jpg")
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,what\n", "the header must be `path,class`"),
        ("path,class\nmissing.jpg,cats\n", "line 2: missing.jpg is not a photo of data.unlabeled"),
        ("path,class\na.jpg,cats\na.jpg,dogs\n", "line 3: a.jpg is labelled twice, cats and dogs"),
        ("path,class\na.jpg,\n", "line 2: needs a path and a class"),
        ("path,class\na.jpg,wolves\n", "a.jpg -> 'wolves' is neither drop nor a class"),
    ],
)
def test_bad_labels_are_one_line(tmp_path, text, message):
    data = pool_data(tmp_path)
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(PipelineError, match=message):
        labelled_photos(data, ["cats", "dogs"], tmp_path / "labels.csv")


def test_labels_without_a_pool_are_one_line(tmp_path):
    (tmp_path / "labels.csv").write_text("path,class\na.jpg,cats\n")
    with pytest.raises(PipelineError, match="data.unlabeled is none"):
        read_labels({"source": "folder", "path": "x", "unlabeled": "none"}, tmp_path / "labels.csv")


def test_updating_labels_returns_what_undo_writes_back(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("path,class\n")
    previous = update_labels({"a.jpg": "cats", "b.jpg": "drop"}, path)
    assert previous == {"a.jpg": None, "b.jpg": None}
    assert path.read_text() == "path,class\na.jpg,cats\nb.jpg,drop\n"
    update_labels(previous, path)
    assert path.read_text() == "path,class\n"


def test_the_pool_listing_changes_with_a_photo_and_is_empty_without_a_pool(tmp_path):
    data = pool_data(tmp_path)
    first = pool_listing(data)
    assert first["photos"] == 3
    make_image(tmp_path / "pool" / "d.png", (10, 10, 10))
    assert pool_listing(data)["listing_sha256"] != first["listing_sha256"]
    assert pool_listing({**data, "unlabeled": "none"}) == {"folder": "none", "photos": 0}


def prepared_ids(prepared):
    return {split: [str(i) for _, _, ids in read_shards(prepared, split) for i in ids] for split in SPLITS}


def test_labelled_pool_photos_join_the_dataset_and_move_no_photo(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=20)
    pool = [(pool_id(f"p{index}.jpg"), "cats", None) for index in range(12)]
    for index in range(12):
        make_image(tmp_path / "pool" / f"p{index}.jpg", (200, 60, 60), noise_seed=100 + index)
    labelled = [(photo_id, label, tmp_path / "pool" / photo_id[5:]) for photo_id, label, _ in pool]
    prepare_folder(root, tmp_path / "before", 32, [0.6, 0.2, 0.2], seed=0)
    counts, _ = prepare_folder(
        root, tmp_path / "after", 32, [0.6, 0.2, 0.2], seed=0, labelled_of=lambda names: labelled
    )
    before, after = prepared_ids(tmp_path / "before"), prepared_ids(tmp_path / "after")
    for split in SPLITS:
        assert [photo for photo in after[split] if not photo.startswith("pool:")] == before[split]
    assert sum(photo.startswith("pool:") for split in SPLITS for photo in after[split]) == 12
    assert sum(counts[split]["cats"] for split in SPLITS) == 32
