"""Fine-tuning: the classifier trained end to end on prepared images, its frozen bottom's
activations cached once when nothing random happens below the first trainable layer."""

import tempfile
from pathlib import Path

import numpy as np

from transfer.core.progress import Progress
from transfer.data.shards import fixed_batches, image_count
from transfer.models.networks import build_augmentation, split_frozen_bottom
from transfer.training.datasets import activation_dataset, image_dataset
from transfer.training.recipe import compile_for_phase, fit, steps_per_epoch


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
    epochs (no augmentation). log: as recipe.fit's.
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
