"""The tf.data pipelines both training phases read: cached features (the head), prepared
images and cached activations (fine-tuning). Each is a stream in the split's order, then
the same tail (batched): its length asserted, the same seeded shuffle, batches, prefetch.
So with the same seed, the batches hold the same photos whatever the stream."""

from pathlib import Path

import numpy as np
import tensorflow as tf

from transfer.data.shards import read_meta, read_shards


def batched(dataset, count, batch_size, shuffle_buffer=None, seed=None):
    """The shared tail of every training dataset (dataset: single elements, `count` of them)."""
    # A known length gives Keras a real progress bar and epoch size.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def feature_dataset(features, labels, batch_size, shuffle_buffer=None, seed=None, chunk=4096):
    """(features, label) batches, read chunk by chunk: with features.load_features's
    FeatureRows, memory does not grow with the number of images.

    The same elements in the same order as tf.data.Dataset.from_tensor_slices, so the
    shuffle, and the head trained on it, are the same."""
    width = features.shape[1]

    def chunks():
        for start in range(0, len(features), chunk):
            yield (
                np.asarray(features[start : start + chunk], np.float32),
                np.asarray(labels[start : start + chunk], np.float32),
            )

    dataset = tf.data.Dataset.from_generator(
        chunks,
        output_signature=(
            tf.TensorSpec((None, width), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        ),
    ).unbatch()
    return batched(dataset, len(features), batch_size, shuffle_buffer, seed)


def image_dataset(prepared_dir, split, batch_size, shuffle_buffer=None, seed=None):
    """A tf.data pipeline of (uint8 images, float32 labels) batches, streamed from shards."""
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
    return batched(dataset, meta["splits"][split]["count"], batch_size, shuffle_buffer, seed)


def activation_dataset(cache_dir, split, batch_size, shuffle_buffer=None, seed=None):
    """(activations, label) batches from cache_activations, in the prepared split's order.

    With the same seed, the batches hold the same images as image_dataset's.
    """
    chunks = sorted(Path(cache_dir).glob(f"{split}-*.npz"))
    with np.load(chunks[0]) as first:
        names = sorted(name for name in first.files if name.startswith("activation_"))
        specs = tuple(tf.TensorSpec((None, *first[name].shape[1:]), tf.float32) for name in names)
    count = 0
    for chunk in chunks:
        with np.load(chunk) as data:
            count += len(data["labels"])

    def read():
        for chunk in chunks:
            with np.load(chunk) as data:
                yield tuple(data[name] for name in names), data["labels"]

    dataset = tf.data.Dataset.from_generator(
        read, output_signature=(specs, tf.TensorSpec((None,), tf.float32))
    ).unbatch()
    return batched(dataset, count, batch_size, shuffle_buffer, seed)
