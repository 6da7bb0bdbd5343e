"""The original encoded files behind the prepared images, as a deployed model receives them.

The prepare stage stores decoded, resized pixels. A served model gets the
photo's bytes instead (SavedModel) or a client's own decoding of them (TFLite,
as `predict` does it), so the export stage measures each format from these
bytes: any skew between the pipeline's preprocessing and a format's own shows
in its accuracy. Folder source: the file at data.path/<id>. tfds source: the
dataset's stored encoding, read again with tfds's decoding skipped.
"""

import io
from itertools import islice
from pathlib import Path

import numpy as np

from transfer.errors import PipelineError
from transfer.images import load_image
from transfer.shards import read_shards
from transfer.tfds_source import tfds_image_and_label


def prepared_ids_and_labels(prepared_dir, split):
    ids, labels = [], []
    for _, shard_labels, shard_ids in read_shards(prepared_dir, split):
        ids.extend(str(image_id) for image_id in shard_ids)
        labels.extend(int(label) for label in shard_labels)
    return ids, labels


def original_files(data, prepared_dir, split):
    """Yield (encoded bytes, label, id) of every prepared image of a split, in prepared order."""
    ids, labels = prepared_ids_and_labels(prepared_dir, split)
    if data["source"] == "folder":
        encoded = (folder_file(Path(data["path"]), image_id) for image_id in ids)
    else:
        tfds_dir = None if data["tfds_dir"] == "default" else data["tfds_dir"]
        encoded = tfds_encoded(data["tfds_name"], tfds_dir, ids)
    yield from zip(encoded, labels, ids)


def folder_file(root, image_id):
    path = root / image_id
    if not path.is_file():
        raise PipelineError(f"{path} is in data/prepared but no longer in data.path (run dvc repro)")
    return path.read_bytes()


def tfds_encoded(name, data_dir, ids):
    """The stored bytes of tfds examples named `<split slice>#<index>`, as prepare names them."""
    import tensorflow_datasets as tfds

    image_key, _ = tfds_image_and_label(name, tfds.builder(name, data_dir=data_dir).info)
    wanted = iter(ids)
    image_id = next(wanted, None)
    while image_id is not None:
        split_name = image_id.rsplit("#", 1)[0]
        dataset = tfds.load(
            name, split=split_name, data_dir=data_dir, decoders={image_key: tfds.decode.SkipDecoding()}
        )
        for index, example in enumerate(tfds.as_numpy(dataset)):
            if image_id != f"{split_name}#{index}":
                break
            yield example[image_key]
            image_id = next(wanted, None)
        if image_id is not None and image_id.rsplit("#", 1)[0] == split_name:
            raise PipelineError(f"tfds dataset '{name}' has no example {image_id} (run dvc repro)")


def original_batches(data, prepared_dir, split, batch_size):
    """Yield (encoded, images, labels) batches of a split's original files: the bytes as they
    are, and the images a client gets from them with `predict`'s preprocessing (Pillow,
    EXIF orientation, bilinear resize to data.image_size: transfer.images.load_image)."""
    files = original_files(data, prepared_dir, split)
    while batch := list(islice(files, batch_size)):
        encoded = [file for file, _, _ in batch]
        images = np.stack([load_image(io.BytesIO(file), data["image_size"]) for file in encoded])
        yield encoded, images, np.array([label for _, label, _ in batch])
