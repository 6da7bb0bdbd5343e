"""What the review knows of the project it runs in: the dataset's photos and labels (from
data/prepared, the ids and labels alone), where each photo's file is, and which decisions of
data/exclusions.csv the last run has not applied yet."""

import zipfile
from pathlib import Path

import numpy as np

from transfer.config.params import load_params
from transfer.core.artifacts import PREPARED
from transfer.core.errors import PipelineError
from transfer.data.exclusions import DROP, EXCLUSIONS, KEEP, Exclusions, content_hash
from transfer.data.pool import LABELS, is_pool_id, label_rows, pool_id
from transfer.data.shards import SPLITS, read_meta
from transfer.data.sources import photo_file
from transfer.review.queues import flagged_photos, listed_pool_photos

RERUN_COMMAND = "dvc repro"


def prepared_labels(prepared_dir):
    """{photo id: (label, split, shard file, row)} of every prepared photo, read from each
    shard's ids and labels arrays only (an .npz member loads on its own: no pixels read)."""
    photos = {}
    prepared_dir = Path(prepared_dir)
    for split in SPLITS:
        for name in read_meta(prepared_dir)["splits"][split]["shards"]:
            try:
                with np.load(prepared_dir / name) as shard:
                    ids, labels = shard["ids"], shard["labels"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                raise PipelineError(
                    f"corrupted shard {prepared_dir / name} (rerun: dvc repro --force prepare)"
                ) from None
            for row, (photo, label) in enumerate(zip(ids.tolist(), labels.tolist())):
                photos[str(photo)] = (int(label), split, name, row)
    return photos


class Project:
    """The project in the current folder, as `transfer review` sees it; exclusions: its file."""

    def __init__(self, root=".", exclusions=EXCLUSIONS, labels=LABELS):
        self.root = Path(root)
        if not (self.root / PREPARED / "meta.json").is_file():
            raise PipelineError(
                f"no prepared data in {self.root / PREPARED}: run the pipeline first (dvc repro, "
                "or dvc repro audit for the audit's lists alone)"
            )
        self.data = load_params(self.root / "params.yaml")["data"]
        self.class_names = read_meta(self.root / PREPARED)["class_names"]
        self.photos = prepared_labels(self.root / PREPARED)
        self.exclusions = self.root / exclusions
        self.labels = self.root / labels

    def is_photo(self, photo):
        """A prepared photo, or a pool photo the to-label queue lists."""
        return photo in self.photos or self.is_unlabelled(photo)

    def is_unlabelled(self, photo):
        """A pool photo the to-label queue lists, not in the dataset (yet)."""
        return photo not in self.photos and is_pool_id(photo) and photo in listed_pool_photos(self.root)

    def file_of(self, photo):
        """The photo's original file, or None for a source without files (tfds)."""
        file = photo_file(self.data, photo)  # a pool photo's too (transfer.data.sources.folder.file_of)
        return None if file is None else self.root / file

    def content_hash(self, photo):
        return content_hash(self.file_of(photo))

    def decisions(self):
        return Exclusions.read(self.exclusions).decisions

    def pool_labels(self):
        """{pool id: class or drop} of data/labels.csv."""
        return {pool_id(path): label for path, label in label_rows(self.labels).items()}

    def waiting_for_rerun(self, decisions=None):
        """How many decisions the last run has not applied: a dropped photo still prepared, a
        relabelled one prepared with another label, a kept one still in the audit's lists, a
        labelled pool photo not prepared yet."""
        decisions = self.decisions() if decisions is None else decisions
        flagged = flagged_photos(self.root)
        labelled = self.pool_labels()
        waiting = sum(label != DROP and photo not in self.photos for photo, label in labelled.items())
        for photo, decision in decisions.items():
            prepared = self.photos.get(photo)
            if decision.action == DROP:
                waiting += prepared is not None
            elif decision.action == KEEP:
                waiting += photo in flagged
            else:
                waiting += prepared is None or self.class_names[prepared[0]] != decision.action
        return waiting
