"""Bottleneck features: run the frozen base once per image, cache the result.

Per split, `<split>_features.npy` (float32, N x 1280) and `<split>_labels.npy`
(float32, N), and `checksums.json`. Features are written into a memory-mapped file shard by shard,
so memory does not grow with the number of images.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from transfer.data import SPLITS, read_meta, read_shards
from transfer.errors import PipelineError

# sha256 of every .npy file: silent bit flips in features would train a wrong head.
CHECKSUMS_FILE = "checksums.json"


def extract_split(extractor, prepared_dir, split, out_dir, batch_size):
    """Write one split's features and labels; returns the number of images."""
    count = read_meta(prepared_dir)["splits"][split]["count"]
    width = extractor.output_shape[-1]
    out_dir = Path(out_dir)
    features = np.lib.format.open_memmap(
        out_dir / f"{split}_features.npy", mode="w+", dtype=np.float32, shape=(count, width)
    )
    labels = np.empty(count, dtype=np.float32)
    done = 0
    for images, shard_labels, _ in read_shards(prepared_dir, split):
        end = done + len(images)
        features[done:end] = extractor.predict(images, batch_size=batch_size, verbose=0)
        labels[done:end] = shard_labels
        done = end
    features.flush()
    del features
    np.save(out_dir / f"{split}_labels.npy", labels)
    return done


def extract_all(extractor, prepared_dir, out_dir, batch_size):
    """Features of every split, and their checksums; returns the image count per split."""
    counts = {split: extract_split(extractor, prepared_dir, split, out_dir, batch_size) for split in SPLITS}
    checksums = {path.name: sha256(path) for path in sorted(Path(out_dir).glob("*.npy"))}
    (Path(out_dir) / CHECKSUMS_FILE).write_text(json.dumps(checksums, indent=2) + "\n")
    return counts


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_features(features_dir, split):
    """(features, labels) of one split, as arrays."""
    features_dir = Path(features_dir)
    paths = [features_dir / f"{split}_features.npy", features_dir / f"{split}_labels.npy"]
    checksums_path = features_dir / CHECKSUMS_FILE
    for path in [*paths, checksums_path]:
        if not path.is_file():
            raise PipelineError(f"features not found: {path} (run the extract stage)")
    checksums = json.loads(checksums_path.read_text())
    for path in paths:
        if checksums.get(path.name) != sha256(path):
            raise PipelineError(
                f"corrupted features file {path}: checksum mismatch (rerun: dvc repro --force extract)"
            )
    features, labels = (np.load(path) for path in paths)
    if len(features) != len(labels):
        raise PipelineError(f"{paths[0]} and {paths[1]} disagree on the number of images")
    return features, labels
