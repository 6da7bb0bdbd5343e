"""Fine-tuning: the classifier trained end to end on prepared images, its frozen bottom's
activations cached once when nothing random happens below the first trainable layer."""

import tempfile
from pathlib import Path

import numpy as np

from transfer.model import build_augmentation, split_frozen_bottom
from transfer.progress import Progress
from transfer.shards import fixed_batches, image_count, read_meta, read_shards
from transfer.training import compile_for_phase, fit, steps_per_epoch


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


def cache_activations(bottom, prepared_dir, split, out_dir, batch_size, progress=None):
    """Run the frozen bottom once over a split; write chunks of its outputs and the labels.

    One uncompressed .npz per inference batch, read back one at a time, so
    memory does not grow with the number of images.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    batches = fixed_batches(prepared_dir, split, batch_size, progress)
    for index, (images, labels, _, count) in enumerate(batches):
        # Under multi_worker each worker runs the whole batch, and Keras gathers every
        # worker's outputs after worker 0's: the first `count` rows are the batch's.
        outputs = bottom.predict_on_batch(images)
        if not isinstance(outputs, (list, tuple)):  # a cut crossed by a single tensor
            outputs = [outputs]
        # float32 on disk whatever the compute precision (mixed bfloat16 gives bfloat16).
        arrays = {f"activation_{i}": np.asarray(out, np.float32)[:count] for i, out in enumerate(outputs)}
        np.savez(out_dir / f"{split}-{index:05d}.npz", labels=labels.astype(np.float32), **arrays)


def activation_dataset(cache_dir, split, batch_size, shuffle_buffer=None, seed=None):
    """(activations, label) batches from cache_activations, in the prepared split's order.

    Built like data.image_dataset (a stream in split order, then the same
    shuffle), so with the same seed the batches hold the same images.
    """
    import tensorflow as tf

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
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fine_tune(
    model,
    base,
    task,
    prepared_dir,
    phase_params,
    *,
    seed,
    first_epoch,
    cache_bottom,
    inference_batch_size,
    class_weight=None,
    log=None,
):
    """Train the classifier's weights on the prepared images; returns history rows.

    What is compiled and fit is the classifier, or with cache_bottom the top
    model that shares its weights; the caller saves a model built from them.

    phase_params: the finetune section of params.yaml. With cache_bottom, the
    frozen layers below fine_tune_at run once per image (their outputs are
    cached in a temporary folder) and each epoch trains only the top, which
    shares the classifier's weights: the same model, to within float noise, in
    less time. Only valid when the training images do not change between
    epochs (no augmentation). log: as training.fit's.
    """
    batch_size, shuffle_buffer = phase_params["batch_size"], phase_params["shuffle_buffer"]
    fine_tune_at = base.backbone.layer_index(phase_params["fine_tune_at"])

    def train(trained_model, train, validation):
        compile_for_phase(trained_model, task, phase_params, steps_per_epoch(train))
        return fit(
            trained_model,
            train,
            validation,
            first_epoch,
            phase_params["epochs"],
            early_stopping=phase_params["early_stopping"],
            class_weight=class_weight,
            log=log,
        )

    if not cache_bottom or fine_tune_at == 0:
        return train(
            model,
            image_dataset(prepared_dir, "train", batch_size, shuffle_buffer, seed),
            image_dataset(prepared_dir, "validation", batch_size),
        )
    bottom, top = split_frozen_bottom(model, base, fine_tune_at)
    with tempfile.TemporaryDirectory(prefix="transfer-activations-") as cache:
        splits = ("train", "validation")
        total = image_count(prepared_dir, splits)
        with Progress("finetune: caching the frozen bottom", total) as progress:
            for split in splits:
                cache_activations(bottom, prepared_dir, split, cache, inference_batch_size, progress)
        return train(
            top,
            activation_dataset(cache, "train", batch_size, shuffle_buffer, seed),
            activation_dataset(cache, "validation", batch_size),
        )


def augmentation_of(config, seed):
    """The augmentation layers the finetune section asks for, or None (finetune.augment off)."""
    if not config["augment"]:
        return None
    return build_augmentation(
        seed,
        flip=config["augment_flip"],
        rotation=config["augment_rotation"],
        zoom=config["augment_zoom"],
        contrast=config["augment_contrast"],
    )
