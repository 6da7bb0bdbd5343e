"""The folder source: a tree of photos, one sub-folder per class, split by a hash of each
file's path (adding photos never moves existing ones to another split)."""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from transfer.core.errors import PipelineError
from transfer.core.progress import Progress
from transfer.data.exclusions import Exclusions
from transfer.data.images import try_load_image
from transfer.data.pool import is_pool_id, labelled_photos, pool_file
from transfer.data.shards import SPLITS, PreparedWriter, check_class_counts


def split_key(relative_path, seed):
    """A stable number in [0, 1) for a file, from its path relative to data.path.

    Depends only on the path and the seed, so adding or removing other photos
    never moves a photo to another split; changing the seed reshuffles.
    """
    digest = hashlib.sha256(f"{seed}:{relative_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(key, fractions):
    """The split a split_key falls into, given (train, validation, test) fractions."""
    train, validation, _ = fractions
    if key < train:
        return "train"
    if key < train + validation:
        return "validation"
    return "test"


def list_folder(root):
    """Find candidate images under root, one sub-folder per class.

    Returns (images, skipped): images as (relative_path, class_name) and
    skipped as (relative_path, reason) for files that cannot be a labelled
    image. The class of a file is the name of the folder that holds it.
    Symbolic links to folders are not followed (no loops).
    """
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(f"data.path does not exist or is not a folder: {root}")
    images, skipped = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        relative_folder = Path(folder).relative_to(root)
        if not files and not subfolders and relative_folder != Path("."):
            skipped.append((f"{relative_folder.as_posix()}/", "empty folder"))
        for name in sorted(files):
            relative_path = (relative_folder / name).as_posix()
            if name.startswith("."):
                skipped.append((relative_path, "hidden file"))
            elif any(part.startswith(".") for part in relative_folder.parts):
                skipped.append((relative_path, "inside a hidden folder"))
            elif relative_folder == Path("."):
                skipped.append((relative_path, "not inside a class folder"))
            else:
                images.append((relative_path, relative_folder.name))
    return images, skipped


def class_folders(candidates, root):
    """The class names, sorted: two or more, no two that differ only in case."""
    class_names = sorted({class_name for _, class_name in candidates})
    if len(class_names) < 2:
        raise PipelineError(
            f"data.path must hold at least two class folders, found {len(class_names)} in {root}"
        )
    lowercase = [name.lower() for name in class_names]
    for name in class_names:
        if lowercase.count(name.lower()) > 1:
            twins = [other for other in class_names if other.lower() == name.lower()]
            raise PipelineError(
                f"class folders {' and '.join(twins)} differ only in case: merge or rename them"
            )
    return class_names


DECODE_WINDOW = 256  # files decoded ahead of the writer


def prepare_folder(
    root, out_dir, image_size, fractions, seed, workers=None, exclusions=None, labelled_of=lambda names: []
):
    """Split and resize a folder-per-class image tree; returns (counts, skipped).

    exclusions: a transfer.data.exclusions.Exclusions (photos dropped or moved to another class).
    labelled_of(class names) -> [(id, class, file)]: photos from elsewhere that join the
    dataset (the pool's labelled photos: transfer.data.pool), split by their id as any photo."""
    root = Path(root)
    candidates, skipped = list_folder(root)
    class_names = class_folders(candidates, root)
    files = {}
    for photo_id, class_name, file in labelled_of(class_names):
        candidates.append((photo_id, class_name))
        files[photo_id] = file
    # Within each split, order by the hash: classes end up interleaved, so a
    # shuffle buffer smaller than the split still mixes them.
    keyed = sorted((split_key(path, seed), path, class_name) for path, class_name in candidates)

    exclusions = exclusions or Exclusions()
    exclusions.bind(class_names)
    # The split's class counts before anything is decoded or written (unreadable files can
    # only lower them: the writer checks again at the end).
    planned = {split: dict.fromkeys(class_names, 0) for split in SPLITS}
    for key, path, class_name in keyed:
        label = exclusions.label_of(path, class_names.index(class_name))
        if label is not None:
            planned[split_of(key, fractions)][class_names[label]] += 1
    check_class_counts(planned)

    def load(item):
        image, error = try_load_image(files.get(item[1], root / item[1]), image_size)
        return item, image, None if error is None else f"unreadable: {error}"

    writer = PreparedWriter(out_dir, image_size, class_names, source=f"folder:{root}")
    # PIL releases the GIL while decoding, so threads decode in parallel. A window
    # of files at a time: pool.map would queue a task per file up front, and
    # memory would grow with the number of photos.
    with (
        ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool,
        Progress("prepare: decoding photos", len(keyed)) as progress,
    ):
        for start in range(0, len(keyed), DECODE_WINDOW):
            window = keyed[start : start + DECODE_WINDOW]
            for (key, path, class_name), image, reason in pool.map(load, window):
                progress.update(1)
                if image is None:
                    skipped.append((path, reason))
                    continue
                label = class_names.index(class_name)
                label = exclusions.apply(path, label)
                if label is not None:
                    writer.add(split_of(key, fractions), image, label, path)
    return writer.close(), sorted(skipped)


def prepare(data, out_dir, exclusions):
    """The folder source's row of transfer.data.sources: data.path's class folders, and the
    pool's labelled photos (data/labels.csv)."""
    return prepare_folder(
        data["path"],
        out_dir,
        data["image_size"],
        data["split"],
        data["seed"],
        exclusions=exclusions,
        labelled_of=lambda class_names: labelled_photos(data, class_names),
    )


def file_of(data, photo_id):
    """The file behind a prepared photo: data.path/<id>, or a labelled pool photo's file."""
    return pool_file(data, photo_id) if is_pool_id(photo_id) else Path(data["path"]) / photo_id


def originals(data, ids):
    """The bytes of each prepared photo's file, in order."""
    for image_id in ids:
        path = file_of(data, image_id)
        if not path.is_file():
            raise PipelineError(f"{path} is in data/prepared but no longer in data.path (run dvc repro)")
        yield path.read_bytes()
