"""The original encoded files behind the prepared images, as a deployed model receives them.

The prepare stage stores decoded, resized pixels. A served model gets the
photo's bytes instead (SavedModel) or a client's own decoding of them (TFLite,
as `predict` does it), so the export stage measures each format from these
bytes: any skew between the pipeline's preprocessing and a format's own shows
in its accuracy. Each source hands back its own (transfer.data.sources): the folder
source the file at data.path/<id>, the tfds source the dataset's stored encoding.
"""

import io
from itertools import islice

import numpy as np

from transfer.data.images import load_image
from transfer.data.shards import read_shards
from transfer.data.sources import get_source


def prepared_ids_and_labels(prepared_dir, split):
    ids, labels = [], []
    for _, shard_labels, shard_ids in read_shards(prepared_dir, split):
        ids.extend(str(image_id) for image_id in shard_ids)
        labels.extend(int(label) for label in shard_labels)
    return ids, labels


def original_files(data, prepared_dir, split):
    """Yield (encoded bytes, label, id) of every prepared image of a split, in prepared order."""
    ids, labels = prepared_ids_and_labels(prepared_dir, split)
    yield from zip(get_source(data["source"]).originals(data, ids), labels, ids)


def original_batches(data, prepared_dir, split, batch_size):
    """Yield (encoded, images, labels) batches of a split's original files: the bytes as they
    are, and the images a client gets from them with `predict`'s preprocessing (Pillow,
    EXIF orientation, bilinear resize to data.image_size: transfer.data.images.load_image)."""
    files = original_files(data, prepared_dir, split)
    while batch := list(islice(files, batch_size)):
        encoded = [file for file, _, _ in batch]
        images = np.stack([load_image(io.BytesIO(file), data["image_size"]) for file in encoded])
        yield encoded, images, np.array([label for _, label, _ in batch])
