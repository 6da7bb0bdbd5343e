"""Bottleneck features: run the frozen base once per image, cache the result.

Per split, `<split>_features.npy` (float32, N x the backbone's feature width)
and `<split>_labels.npy` (float32, N), `classes.json` (the class names, index
order) and `checksums.json`. Features are written to their file batch by batch
and read back row range by row range, so memory does not grow with the number
of images.
"""

import json
from pathlib import Path

import numpy as np

from transfer.core.artifacts import read_classes_file, write_class_names
from transfer.core.errors import PipelineError
from transfer.core.io import file_sha256
from transfer.core.progress import Progress
from transfer.data.shards import SPLITS, fixed_batches, image_count, read_meta

# sha256 of every .npy file: silent bit flips in features would train a wrong head.
CHECKSUMS_FILE = "checksums.json"


def extract_split(features_of, width, prepared_dir, split, out_dir, batch_size, progress=None):
    """Write one split's features (features_of(images) -> N x width) and labels; returns the
    number of images."""
    count = image_count(prepared_dir, [split])
    out_dir = Path(out_dir)
    labels = np.empty(count, dtype=np.float32)
    done = 0
    # Written batch by batch through the file (not a memory map, whose written pages would
    # stay in this process's resident memory): the same bytes np.save would write.
    with open(out_dir / f"{split}_features.npy", "wb") as file:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        np.lib.format.write_array_header_1_0(file, {**header, "shape": (count, width)})
        for images, batch_labels, _, real in fixed_batches(prepared_dir, split, batch_size, progress):
            file.write(np.asarray(features_of(images), np.float32)[:real].tobytes())
            labels[done : done + real] = batch_labels
            done += real
    np.save(out_dir / f"{split}_labels.npy", labels)
    return done


def extract_all(runner, prepared_dir, out_dir, batch_size):
    """Features of every split, and their checksums; returns the image count per split.

    runner: a feature extractor's runner (transfer.inference.runners), in Keras or LiteRT."""
    width = runner.logit_width  # a feature extractor's single output: its features

    def features_of(images):
        return runner.run(images)["logits"]

    with Progress("extract: features", image_count(prepared_dir, SPLITS)) as progress:
        counts = {
            split: extract_split(features_of, width, prepared_dir, split, out_dir, batch_size, progress)
            for split in SPLITS
        }
    write_class_names(out_dir, read_meta(prepared_dir)["class_names"])
    checksums = {path.name: file_sha256(path) for path in sorted(Path(out_dir).glob("*.npy"))}
    (Path(out_dir) / CHECKSUMS_FILE).write_text(json.dumps(checksums, indent=2) + "\n")
    return counts


def feature_class_names(features_dir):
    return read_classes_file(features_dir, "features not found: {path} (run the extract stage)")


class FeatureRows:
    """A split's features in their .npy file, read row range by row range (`rows[a:b]`), never
    all at once and never memory-mapped: memory stays flat whatever the number of images."""

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as file:
            major, _ = np.lib.format.read_magic(file)
            read_header = (
                np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            )
            self.shape, _, self.dtype = read_header(file)
            self.offset = file.tell()

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        start, stop, step = rows.indices(len(self))
        if step != 1:
            raise IndexError("FeatureRows reads contiguous row ranges only")
        width = self.shape[1]
        with open(self.path, "rb") as file:
            file.seek(self.offset + start * width * self.dtype.itemsize)
            return np.fromfile(file, dtype=self.dtype, count=max(0, stop - start) * width).reshape(-1, width)

    def __array__(self, dtype=None, copy=None):
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)


def load_features(features_dir, split):
    """(features, labels) of one split: FeatureRows (read as they are used) and the labels array."""
    features_dir = Path(features_dir)
    paths = [features_dir / f"{split}_features.npy", features_dir / f"{split}_labels.npy"]
    checksums_path = features_dir / CHECKSUMS_FILE
    for path in [*paths, checksums_path]:
        if not path.is_file():
            raise PipelineError(f"features not found: {path} (run the extract stage)")
    checksums = json.loads(checksums_path.read_text())
    for path in paths:
        if checksums.get(path.name) != file_sha256(path):
            raise PipelineError(
                f"corrupted features file {path}: checksum mismatch (rerun: dvc repro --force extract)"
            )
    features, labels = FeatureRows(paths[0]), np.load(paths[1])
    if len(features) != len(labels):
        raise PipelineError(f"{paths[0]} and {paths[1]} disagree on the number of images")
    return features, labels
