"""The data audit: duplicates, split leaks, likely label errors and outliers, from the
prepared photos and their cached features (no training, no TensorFlow).

Every photo of every split is in every check: a wrong label in the test split misleads the
test score as much as one in train misleads the model. The audit feeds nothing to training,
so scoring test photos here leaks nothing. Rows are indexed in split order, train then
validation then test, each in the order of its shards, which is the order of its features
(transfer.data.features writes them batch by batch from the same shards).
"""

from dataclasses import dataclass

import numpy as np

from transfer.audit.duplicates import (
    PixelMatcher,
    candidate_pairs,
    exact_pairs,
    groups_of,
    pixel_digest,
    thumbnail,
)
from transfer.audit.label_issues import check_auditable, find_label_issues, out_of_sample_probabilities
from transfer.core.errors import PipelineError
from transfer.core.progress import Progress
from transfer.data.features import load_features
from transfer.data.neighbours import nearest_neighbours
from transfer.data.shards import SPLITS, image_count, read_meta, read_shards

THRESHOLD_KEYS = (
    "candidate_similarity",
    "duplicate_similarity",
    "neighbours",
    "folds",
    "regularization",
    "outlier_iqr",
)
LEAKS = (("train", "validation"), ("train", "test"), ("validation", "test"))


@dataclass
class Photos:
    ids: list
    splits: list
    labels: np.ndarray
    digests: list
    thumbnails: np.ndarray


def each_image(prepared_dir, progress=None):
    """(index, image) of every prepared photo, in the audit's row order."""
    index = 0
    for split in SPLITS:
        for images, _, _ in read_shards(prepared_dir, split):
            for image in images:
                yield index, image
                index += 1
            if progress is not None:
                progress.update(len(images))


def read_photos(prepared_dir, progress):
    ids, splits, labels, digests, thumbnails = [], [], [], [], []
    for split in SPLITS:
        for images, shard_labels, shard_ids in read_shards(prepared_dir, split):
            ids += [str(example_id) for example_id in shard_ids]
            splits += [split] * len(images)
            labels.append(shard_labels)
            digests += [pixel_digest(image) for image in images]
            thumbnails += [thumbnail(image) for image in images]
            progress.update(len(images))
    return Photos(ids, splits, np.concatenate(labels).astype(np.int64), digests, np.stack(thumbnails))


def read_all_features(features_dir, count):
    features = np.concatenate([np.asarray(load_features(features_dir, split)[0]) for split in SPLITS])
    if len(features) != count:
        raise PipelineError(
            f"{features_dir} holds {len(features)} photos' features, the prepared data {count} "
            "(rerun: dvc repro extract)"
        )
    return features


@dataclass
class AuditResult:
    class_names: list
    photos: Photos
    groups: list  # lists of row indices
    similarity: dict  # row -> best similarity to another member of its group
    probabilities: np.ndarray  # every row's out-of-sample class probabilities
    issues: np.ndarray  # rows, most likely label error first
    quality: np.ndarray  # every row's label quality
    isolation: np.ndarray  # every row's mean cosine distance to its neighbours
    outliers: np.ndarray  # rows, most isolated first
    thresholds: dict
    reviewed: int = 0  # flagged photos left out of the lists: a person kept or relabelled them


def audit(prepared_dir, features_dir, config, seed, reviewed=frozenset()):
    """reviewed: the ids a person kept or relabelled, scored but not listed (leave_out_reviewed)."""
    class_names = read_meta(prepared_dir)["class_names"]
    count = image_count(prepared_dir, SPLITS)
    with Progress("audit: reading photos", count) as progress:
        photos = read_photos(prepared_dir, progress)
    features = read_all_features(features_dir, count)

    check_auditable(photos.labels, class_names, config["folds"])
    if len(features) <= config["neighbours"]:
        raise PipelineError(
            f"too few photos to audit: {len(features)}, audit.neighbours = {config['neighbours']} "
            "needs more (add photos or lower audit.neighbours)"
        )
    probabilities = out_of_sample_probabilities(
        features, photos.labels, config["folds"], seed, config["regularization"]
    )
    issues, quality = find_label_issues(photos.labels, probabilities)

    neighbours, similarities = nearest_neighbours(features, config["neighbours"])
    pairs = candidate_pairs(neighbours, similarities, config["candidate_similarity"])
    matcher = PixelMatcher(photos.thumbnails, pairs)
    with Progress("audit: comparing candidate duplicates", count) as progress:
        for index, image in each_image(prepared_dir, progress):
            matcher.feed(index, image)
    similarity = {}
    linked = []
    for first, second in exact_pairs(photos.digests):
        linked.append((first, second))
        similarity[first] = similarity[second] = 1.0
    for (first, second), score in matcher.scores.items():
        if score >= config["duplicate_similarity"]:
            linked.append((first, second))
            for row in (first, second):
                similarity[row] = max(similarity.get(row, -1.0), score)

    isolation = 1.0 - similarities.mean(axis=1)
    lower, upper = np.quantile(isolation, [0.25, 0.75])
    outlier_threshold = float(upper + config["outlier_iqr"] * (upper - lower))
    outliers = np.flatnonzero(isolation > outlier_threshold)
    outliers = outliers[np.argsort(-isolation[outliers], kind="stable")]
    issues, outliers, groups, hidden = leave_out_reviewed(
        photos.ids, issues, outliers, groups_of(count, linked), reviewed
    )
    return AuditResult(
        class_names=class_names,
        photos=photos,
        groups=groups,
        reviewed=hidden,
        similarity=similarity,
        probabilities=probabilities,
        issues=issues,
        quality=quality,
        isolation=isolation,
        outliers=outliers,
        thresholds={
            **{key: config[key] for key in THRESHOLD_KEYS},
            "outlier_isolation": round(outlier_threshold, 6),
        },
    )


def leave_out_reviewed(ids, issues, outliers, groups, reviewed):
    """The lists without the photos a person reviewed (a duplicate group goes when all its
    photos were kept), and how many flagged photos that leaves out."""
    flagged = {*issues.tolist(), *outliers.tolist(), *(row for members in groups for row in members)}
    issues, outliers = (
        np.array([row for row in rows if ids[row] not in reviewed], np.int64) for rows in (issues, outliers)
    )
    groups = [members for members in groups if not all(ids[row] in reviewed for row in members)]
    return issues, outliers, groups, sum(1 for row in flagged if ids[row] in reviewed)


def group_kind(result, members):
    return "exact" if len({result.photos.digests[row] for row in members}) == 1 else "near"


def summary(result):
    """The audit's record (transfer.core.records)."""
    photos, names = result.photos, result.class_names
    per_class = np.bincount(photos.labels, minlength=len(names))
    kinds = [group_kind(result, members) for members in result.groups]
    group_splits = [{photos.splits[row] for row in members} for members in result.groups]
    issue_splits = [photos.splits[row] for row in result.issues]
    return {
        "photos": {split: photos.splits.count(split) for split in SPLITS},
        "classes": {name: int(count) for name, count in zip(names, per_class)},
        "imbalance_ratio": round(float(per_class.max() / max(per_class.min(), 1)), 4),
        "exact_duplicate_groups": kinds.count("exact"),
        "near_duplicate_groups": kinds.count("near"),
        "duplicate_photos": sum(len(members) - 1 for members in result.groups),
        "leaks": {f"{a}_{b}": sum(1 for splits in group_splits if {a, b} <= splits) for a, b in LEAKS},
        "leaked_groups": sum(1 for splits in group_splits if len(splits) > 1),
        "label_issues": len(result.issues),
        "label_issues_by_split": {split: issue_splits.count(split) for split in SPLITS},
        "out_of_sample_accuracy": round(float((result.probabilities.argmax(1) == photos.labels).mean()), 6),
        "outliers": len(result.outliers),
        "reviewed_not_listed": result.reviewed,
        "thresholds": result.thresholds,
    }


def duplicate_rows(result):
    photos = result.photos
    return [
        {
            "group": number,
            "kind": group_kind(result, members),
            "path": photos.ids[row],
            "split": photos.splits[row],
            "class": result.class_names[photos.labels[row]],
            "similarity": round(result.similarity[row], 4),
        }
        for number, members in enumerate(result.groups, start=1)
        for row in members
    ]


def label_issue_rows(result):
    photos, names = result.photos, result.class_names
    rows = []
    for rank, row in enumerate(result.issues.tolist(), start=1):
        probabilities = result.probabilities[row]
        suggested = int(probabilities.argmax())
        rows.append(
            {
                "rank": rank,
                "path": photos.ids[row],
                "split": photos.splits[row],
                "given": names[photos.labels[row]],
                "suggested": names[suggested],
                "suggested_probability": round(float(probabilities[suggested]), 4),
                "label_quality": round(float(result.quality[row]), 4),
            }
        )
    return rows


def outlier_rows(result):
    photos = result.photos
    return [
        {
            "path": photos.ids[row],
            "split": photos.splits[row],
            "class": result.class_names[photos.labels[row]],
            "isolation": round(float(result.isolation[row]), 4),
        }
        for row in result.outliers.tolist()
    ]
