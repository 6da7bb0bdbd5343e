"""The pool: a folder of photos nobody has labelled yet (params.yaml's data.unlabeled), and
data/labels.csv, the classes a person gave some of them.

data/labels.csv has the columns `path,class`: `path` relative to data.unlabeled (as
metrics/to_label.csv lists it), `class` one of the dataset's classes, or `drop` for a photo of
none of them (it never joins the dataset). prepare reads it (a DVC dependency): a labelled pool
photo joins the dataset under the id `pool:<path>`, in the split that id's hash gives it, as
any photo, so adding labels never moves a photo already there. A path that is not a photo of
the pool, a class that does not exist or a photo listed twice with two classes is one error
line. The shipped file has the header only.
"""

import csv
import hashlib
import io
from pathlib import Path

from transfer.core.errors import PipelineError
from transfer.core.io import update_mapping_file
from transfer.data.images import find_images

LABELS = "data/labels.csv"
LABEL_COLUMNS = ("path", "class")
NO_POOL = "none"
DROP = "drop"
ID_PREFIX = "pool:"


def pool_folder(data):
    """data.unlabeled as a Path, or None when there is no pool."""
    return None if data["unlabeled"] == NO_POOL else Path(data["unlabeled"])


def pool_photos(folder):
    """The pool's photos, as paths relative to it, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(f"data.unlabeled does not exist or is not a folder: {folder}")
    return [path.relative_to(folder).as_posix() for path in find_images([folder])]


def pool_listing(data):
    """metrics/pool.json: the pool's photos and a digest of their names, sizes and modification
    times. The stages that read the pool depend on this file (the pool stage writes it on every
    run, from file metadata alone), so a photo added, removed or rewritten reruns them, and a
    project without a pool depends on no folder."""
    folder = pool_folder(data)
    if folder is None:
        return {"folder": NO_POOL, "photos": 0}
    digest = hashlib.sha256()
    photos = pool_photos(folder)
    for photo in photos:
        stat = (folder / photo).stat()
        digest.update(f"{photo}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return {"folder": str(folder), "photos": len(photos), "listing_sha256": digest.hexdigest()}


def pool_id(path):
    """A pool photo's id in the prepared data."""
    return ID_PREFIX + path


def is_pool_id(photo_id):
    return str(photo_id).startswith(ID_PREFIX)


def pool_file(data, photo_id):
    return pool_folder(data) / str(photo_id)[len(ID_PREFIX) :]


def read_labels(data, path=LABELS):
    """{pool path: class or drop} of data/labels.csv (no file: none), each path checked to be a
    photo of the pool."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != LABEL_COLUMNS:
            raise PipelineError(f"{path}: the header must be `{','.join(LABEL_COLUMNS)}`")
        rows = [
            (line, (row["path"] or "").strip(), (row["class"] or "").strip())
            for line, row in enumerate(reader, 2)
        ]
    if rows and pool_folder(data) is None:
        raise PipelineError(
            f"{path} labels photos of a pool, but data.unlabeled is {NO_POOL}: set it to the pool's folder"
        )
    labels = {}
    photos = set(pool_photos(pool_folder(data))) if rows else set()
    for line, photo, label in rows:
        if not photo or not label:
            raise PipelineError(f"{path} line {line}: needs a path and a class (or drop)")
        if photo not in photos:
            raise PipelineError(
                f"{path} line {line}: {photo} is not a photo of data.unlabeled ({pool_folder(data)})"
            )
        if labels.get(photo, label) != label:
            raise PipelineError(f"{path} line {line}: {photo} is labelled twice, {labels[photo]} and {label}")
        labels[photo] = label
    return labels


def label_rows(path):
    """{pool path: class} as the file holds them, unchecked (what an update starts from)."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="") as file:
        return {row["path"]: row["class"] for row in csv.DictReader(file)}


def labels_text(labels):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    writer.writerows(labels.items())
    return buffer.getvalue()


def update_labels(changes, path=LABELS):
    """Apply {pool path: class, drop, or None to remove its line} at once, under the folder's
    lock and by one atomic rename; returns the lines' classes before (what undo writes back)."""
    return update_mapping_file(path, changes, label_rows, labels_text)


def labelled_photos(data, class_names, path=LABELS):
    """[(id, class, file)] of the pool photos labelled with a class, checked against the
    dataset's classes."""
    labelled = []
    for photo, label in read_labels(data, path).items():
        if label == DROP:
            continue
        if label not in class_names:
            raise PipelineError(
                f"{path}: {photo} -> '{label}' is neither drop nor a class ({', '.join(class_names)})"
            )
        labelled.append((pool_id(photo), label, pool_folder(data) / photo))
    return labelled
