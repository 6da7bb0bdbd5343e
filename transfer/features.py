"""Bottleneck features: run the frozen base once per image, cache the result.

Per split, `<split>_features.npy` (float32, N x 1280) and `<split>_labels.npy`
(float32, N). Features are written into a memory-mapped file shard by shard,
so memory does not grow with the number of images.
"""

from pathlib import Path

import numpy as np

from transfer.data import SPLITS, read_meta, read_shards
from transfer.errors import PipelineError


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
    """Features of every split; returns the image count per split."""
    return {split: extract_split(extractor, prepared_dir, split, out_dir, batch_size) for split in SPLITS}


def load_features(features_dir, split):
    """(features, labels) of one split, as arrays."""
    features_dir = Path(features_dir)
    paths = [features_dir / f"{split}_features.npy", features_dir / f"{split}_labels.npy"]
    for path in paths:
        if not path.is_file():
            raise PipelineError(f"features not found: {path} (run the extract stage)")
    features, labels = (np.load(path) for path in paths)
    if len(features) != len(labels):
        raise PipelineError(f"{paths[0]} and {paths[1]} disagree on the number of images")
    return features, labels
