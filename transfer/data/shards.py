"""Raw images in, resized split shards out, and back again as tf.data.

Prepared data lives in one folder: `meta.json` (class names, image size, the
shard files of each split) and shards `<split>-NNNNN.npz`, each an
uncompressed NumPy archive of `images` (uint8, N x S x S x 3), `labels`
(int64) and `ids` (the source file's relative path, or the tfds split and
index). A few big shards instead of one file per image, because DVC is slow
with many small files; uncompressed, because photos barely compress losslessly
and decompression would slow every epoch of fine-tuning.
"""

import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transfer.core.errors import PipelineError, one_line

SPLITS = ("train", "validation", "test")
META_FILE = "meta.json"
# About 64 MiB of pixels per shard: few files, bounded memory when reading one.
SHARD_BYTES = 64 * 2**20


# The fewest photos of each class that every split must hold. A class missing from train
# cannot be learnt; one missing from validation or test makes that split's figures mean
# something else (accuracy over the other classes only, AUC undefined) without a sign.
MIN_PHOTOS_PER_CLASS_PER_SPLIT = 1


def check_class_counts(counts):
    """Refuse {split: {class: photos}} where a split holds too few photos of a class, in one
    line naming the class, the split and the counts."""
    for split in SPLITS:
        if sum(counts[split].values()) == 0:
            raise PipelineError(f"split '{split}' is empty: too few images for data.split")
    for class_name in counts["train"]:
        for split in SPLITS:
            count = counts[split][class_name]
            if count < MIN_PHOTOS_PER_CLASS_PER_SPLIT:
                total = sum(counts[other][class_name] for other in SPLITS)
                raise PipelineError(
                    f"class '{class_name}' has {count} photos in the {split} split ({total} in all): "
                    f"every split needs at least {MIN_PHOTOS_PER_CLASS_PER_SPLIT} of each class; "
                    "add photos of it, or change data.split or data.seed"
                )


class PreparedWriter:
    """Collects resized images per split and writes them as shards plus meta.json.

    A split's images wait for their shard in a file beside the shards, not in
    memory: the three splits fill at once, so memory would otherwise hold up to
    three shards, and grow with the number of images up to that.
    """

    def __init__(self, out_dir, image_size, class_names, source):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.image_size = image_size
        self.class_names = list(class_names)
        self.source = source
        self.shard_capacity = max(1, SHARD_BYTES // (image_size * image_size * 3))
        self.pending = {split: [] for split in SPLITS}  # (label, id) of each waiting image
        self.waiting = {split: None for split in SPLITS}  # the file of their pixels
        self.shards = {split: [] for split in SPLITS}
        self.counts = {split: {name: 0 for name in self.class_names} for split in SPLITS}

    def _waiting_path(self, split):
        return self.out_dir / f".{split}-waiting.raw"

    def add(self, split, image, label, example_id):
        if self.waiting[split] is None:
            self.waiting[split] = open(self._waiting_path(split), "wb")
        self.waiting[split].write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        self.pending[split].append((label, example_id))
        self.counts[split][self.class_names[label]] += 1
        if len(self.pending[split]) >= self.shard_capacity:
            self._flush(split)

    def _flush(self, split):
        examples = self.pending[split]
        if not examples:
            return
        self.waiting[split].close()
        self.waiting[split] = None
        size = self.image_size
        images = np.fromfile(self._waiting_path(split), dtype=np.uint8).reshape(len(examples), size, size, 3)
        name = f"{split}-{len(self.shards[split]):05d}.npz"
        labels, ids = zip(*examples)
        np.savez(
            self.out_dir / name,
            images=images,
            labels=np.asarray(labels, dtype=np.int64),
            ids=np.asarray(ids, dtype=str),
        )
        self._waiting_path(split).unlink()
        self.shards[split].append(name)
        self.pending[split] = []

    def close(self):
        """Write the last shards and meta.json; returns the counts per split and class."""
        for split in SPLITS:
            self._flush(split)
        check_class_counts(self.counts)
        meta = {
            "source": self.source,
            "image_size": self.image_size,
            "class_names": self.class_names,
            "splits": {
                split: {
                    "count": sum(self.counts[split].values()),
                    "class_counts": [self.counts[split][name] for name in self.class_names],
                    "shards": self.shards[split],
                }
                for split in SPLITS
            },
        }
        (self.out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return self.counts


def read_meta(prepared_dir):
    path = Path(prepared_dir) / META_FILE
    if not path.is_file():
        raise PipelineError(f"prepared data not found: {path} (run the prepare stage)")
    return json.loads(path.read_text())


def image_count(prepared_dir, splits):
    """How many prepared images the given splits hold together."""
    meta = read_meta(prepared_dir)
    return sum(meta["splits"][split]["count"] for split in splits)


def read_shards(prepared_dir, split):
    """Yield (images, labels, ids) one shard at a time: memory stays bounded.

    A shard is a zip archive with a CRC-32 per array, so a truncated shard or
    one with flipped bytes is detected here, not read as wrong pixels.
    """
    prepared_dir = Path(prepared_dir)
    for name in read_meta(prepared_dir)["splits"][split]["shards"]:
        path = prepared_dir / name
        try:
            with np.load(path) as shard:
                arrays = shard["images"], shard["labels"], shard["ids"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise PipelineError(
                f"corrupted shard {path}: {one_line(error)} (rerun: dvc repro --force prepare)"
            ) from None
        yield arrays


def fixed_batches(prepared_dir, split, batch_size, progress=None):
    """Yield (images, labels, ids, count) batches of exactly batch_size, across shards.

    For inference: one batch shape means the model is traced once (a new
    shape costs a retrace), and the last batch is padded with zeros; `count`
    says how many rows are real (labels and ids hold only those). The next
    shard is read in a background thread while the model works on this one;
    batches are views into the shard, so at most two shards are in memory.
    progress: a Progress, advanced by each batch's real rows once it is done.
    """
    for batch in padded_batches(prepared_dir, split, batch_size):
        yield batch
        if progress is not None:
            progress.update(batch[3])


def padded_batches(prepared_dir, split, batch_size):
    with ThreadPoolExecutor(max_workers=1) as reader:
        shards = read_shards(prepared_dir, split)
        upcoming = reader.submit(next, shards, None)
        carry = None  # fewer than batch_size rows left over from the previous shard
        while (shard := upcoming.result()) is not None:
            upcoming = reader.submit(next, shards, None)
            start = 0
            if carry is not None:
                start = batch_size - len(carry[1])
                carry = [np.concatenate([left, part[:start]]) for left, part in zip(carry, shard)]
                if len(carry[1]) < batch_size:
                    continue
                yield (*carry, batch_size)
            while start + batch_size <= len(shard[1]):
                yield (*(part[start : start + batch_size] for part in shard), batch_size)
                start += batch_size
            carry = [part[start:].copy() for part in shard] if start < len(shard[1]) else None
        if carry is not None:
            images, labels, ids = carry
            padding = np.zeros((batch_size - len(labels), *images.shape[1:]), np.uint8)
            yield np.concatenate([images, padding]), labels, ids, len(labels)
