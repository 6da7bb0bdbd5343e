"""Raw images in, resized split shards out, and back again as tf.data.

Prepared data lives in one folder: `meta.json` (class names, image size, the
shard files of each split) and shards `<split>-NNNNN.npz`, each an
uncompressed NumPy archive of `images` (uint8, N x S x S x 3), `labels`
(int64) and `ids` (the source file's relative path, or the tfds split and
index). A few big shards instead of one file per image, because DVC is slow
with many small files; uncompressed, because photos barely compress losslessly
and decompression would slow every epoch of fine-tuning.
"""

import contextlib
import hashlib
import json
import os
import queue
import threading
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, ImageOps

from transfer.errors import PipelineError, one_line
from transfer.progress import Progress

SPLITS = ("train", "validation", "test")
META_FILE = "meta.json"
# About 64 MiB of pixels per shard: few files, bounded memory when reading one.
SHARD_BYTES = 64 * 2**20
# Errors PIL raises for files that are not (complete) images.
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def load_image(path, image_size):
    """Decode any image PIL reads to RGB uint8 at image_size x image_size.

    EXIF orientation is applied, so phone photos are upright; grayscale, CMYK,
    palette and alpha images are converted to RGB (alpha is dropped). Raises
    one of UNREADABLE_IMAGE_ERRORS for a file that is not a complete image;
    PIL refuses images over ~179 megapixels (DecompressionBombError).
    """
    with warnings.catch_warnings():
        # PIL warns before it refuses; the refusal itself is the error we report.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return resize_image(image.convert("RGB"), image_size)


def try_load_image(path, image_size):
    """(image, None), or (None, a one-line reason) for a file that is not a complete image."""
    try:
        return load_image(path, image_size), None
    except UNREADABLE_IMAGE_ERRORS as error:
        return None, one_line(error) or type(error).__name__


def resize_image(image, image_size):
    """Squash a PIL image or an HxWx3 uint8 array to a square, as the tutorial does."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    resized = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


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
            if sum(self.counts[split].values()) == 0:
                raise PipelineError(f"split '{split}' is empty: too few images for data.split")
        # A class missing from validation or test only weakens those figures
        # (prepare.json shows it); one missing from train cannot be learnt.
        for class_name, count in self.counts["train"].items():
            if count == 0:
                total = sum(self.counts[split][class_name] for split in SPLITS)
                raise PipelineError(
                    f"class '{class_name}' has no training images: "
                    f"its {total} images are too few for data.split"
                )
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


DECODE_WINDOW = 256  # files decoded ahead of the writer


def prepare_folder(root, out_dir, image_size, fractions, seed, workers=None):
    """Split and resize a folder-per-class image tree; returns (counts, skipped)."""
    root = Path(root)
    candidates, skipped = list_folder(root)
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
    # Within each split, order by the hash: classes end up interleaved, so a
    # shuffle buffer smaller than the split still mixes them.
    keyed = sorted((split_key(path, seed), path, class_name) for path, class_name in candidates)

    def load(item):
        image, error = try_load_image(root / item[1], image_size)
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
                writer.add(split_of(key, fractions), image, class_names.index(class_name), path)
    return writer.close(), sorted(skipped)


def tfds_split_names(fractions):
    """tfds slicing of a dataset's 'train' split into train/validation/test."""
    train_end = round(fractions[0] * 100)
    validation_end = round((fractions[0] + fractions[1]) * 100)
    if (
        abs(train_end - fractions[0] * 100) > 1e-6
        or abs(validation_end - (fractions[0] + fractions[1]) * 100) > 1e-6
    ):
        raise PipelineError(
            f"data.split = {list(fractions)} is invalid for the tfds source: must be whole percents"
        )
    return [f"train[:{train_end}%]", f"train[{train_end}%:{validation_end}%]", f"train[{validation_end}%:]"]


def tfds_image_and_label(name, info):
    """The (image, label) feature keys of an image-classification dataset, from its info.

    The dataset's supervised keys when they are an image and a class label,
    else its only image feature and only class-label feature.
    """
    import tensorflow_datasets as tfds

    features = info.features
    images = [key for key, feature in features.items() if isinstance(feature, tfds.features.Image)]
    labels = [key for key, feature in features.items() if isinstance(feature, tfds.features.ClassLabel)]
    supervised = info.supervised_keys
    if (
        isinstance(supervised, tuple)
        and len(supervised) == 2
        and supervised[0] in images
        and supervised[1] in labels
    ):
        return supervised
    if len(images) == 1 and len(labels) == 1:
        return images[0], labels[0]
    kinds = ", ".join(f"{key}: {type(feature).__name__}" for key, feature in features.items())
    raise PipelineError(
        f"tfds dataset '{name}' is not image classification: it needs one Image and one ClassLabel "
        f"feature, it has {kinds}"
    )


def prepare_tfds(out_dir, image_size, fractions, name="cats_vs_dogs", data_dir=None):
    """Download (or reuse) a TensorFlow Datasets image-classification set and write it as shards.

    The image and label features are found from the dataset's info before
    anything is downloaded; `data.split` slices the dataset's 'train' split.
    data_dir: tfds's data dir (None: its default, $TFDS_DATA_DIR or ~/tensorflow_datasets).
    """
    import tensorflow_datasets as tfds

    split_names = tfds_split_names(fractions)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        info = builder.info
    except Exception as error:  # tfds raises many types; all mean "no such dataset"
        raise PipelineError(f"could not load tfds dataset '{name}': {one_line(error)}") from None
    image_key, label_key = tfds_image_and_label(name, info)
    try:
        with downloads_failing_fast(name):
            datasets = tfds.load(name, split=split_names, data_dir=data_dir)
    except PipelineError:
        raise
    except Exception as error:  # download and preparation failures come as many types
        raise PipelineError(f"could not load tfds dataset '{name}': {one_line(error)}") from None
    class_names = info.features[label_key].names
    writer = PreparedWriter(out_dir, image_size, class_names, source=f"tfds:{name}")
    # tfds knows each split's size; an unknown one (-2) leaves the bar without a total.
    sizes = [int(dataset.cardinality()) for dataset in datasets]
    total = sum(sizes) if min(sizes) >= 0 else None
    with Progress(f"prepare: reading tfds {name}", total) as progress:
        for split, split_name, dataset in zip(SPLITS, split_names, datasets):
            for index, example in enumerate(tfds.as_numpy(dataset)):
                progress.update(1)
                image = example[image_key]
                if image.shape[-1] == 1:
                    image = np.repeat(image, 3, axis=-1)
                image = np.ascontiguousarray(image[..., :3])  # RGBA: alpha dropped, as for files
                writer.add(
                    split, resize_image(image, image_size), int(example[label_key]), f"{split_name}#{index}"
                )
    # tfds itself drops the 1,738 corrupt cats_vs_dogs images while building.
    return writer.close(), []


DOWNLOAD_PROBE_SECONDS = 10


@contextlib.contextmanager
def downloads_failing_fast(name):
    """tfds downloads that fail in seconds, not minutes, where their host cannot be reached.

    Wraps the one method every tfds download goes through (DownloadManager._download
    in tensorflow-datasets 4.9; tests/test_tfds_source.py checks it offline), so a
    dataset that is already prepared, or tfds.testing.mock_data, never probes.
    """
    from tensorflow_datasets.core.download.download_manager import DownloadManager

    original = DownloadManager._download
    checked = set()

    def download(manager, resource):
        host = urlsplit(resource.url).netloc
        if host not in checked:
            check_download_reachable(name, resource.url)
            checked.add(host)
        return original(manager, resource)

    DownloadManager._download = download
    try:
        yield
    finally:
        DownloadManager._download = original


def check_download_reachable(name, url):
    """Raise PipelineError unless url's host answers within DOWNLOAD_PROBE_SECONDS.

    Offline, tfds's downloader retries for minutes before it gives up. One HEAD
    request, through the environment's proxies as tfds's own requests go, in a
    daemon thread: a DNS lookup that hangs cannot hold the stage (or its exit).
    """
    import requests

    answers = queue.Queue()

    def probe():
        try:
            requests.head(url, timeout=DOWNLOAD_PROBE_SECONDS, allow_redirects=False)
            answers.put(True)
        except requests.RequestException:
            answers.put(False)

    threading.Thread(target=probe, daemon=True).start()
    try:
        if answers.get(timeout=DOWNLOAD_PROBE_SECONDS):
            return
    except queue.Empty:
        pass
    raise PipelineError(
        f"could not download tfds dataset '{name}': {urlsplit(url).netloc} cannot be reached "
        "(no network?). Use your own photos (data.source: folder, data.path: a folder with "
        f"one sub-folder per class) or set data.tfds_dir to a TFDS data dir that holds '{name}' "
        f"already (`tfds build {name} --data_dir DIR` on a machine with internet access)"
    )


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


def image_dataset(prepared_dir, split, batch_size, shuffle_buffer=None, seed=None):
    """A tf.data pipeline of (uint8 images, float32 labels) batches, streamed from shards."""
    import tensorflow as tf

    meta = read_meta(prepared_dir)
    size = meta["image_size"]

    def shards():
        for images, labels, _ in read_shards(prepared_dir, split):
            yield images, labels.astype(np.float32)

    dataset = tf.data.Dataset.from_generator(
        shards,
        output_signature=(
            tf.TensorSpec((None, size, size, 3), tf.uint8),
            tf.TensorSpec((None,), tf.float32),
        ),
    ).unbatch()
    # A known length gives Keras a real progress bar and epoch size.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(meta["splits"][split]["count"]))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
