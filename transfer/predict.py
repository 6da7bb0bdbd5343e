"""Run a trained model on image files: `transfer predict`.

Works on raw photos of any size and common format: images are decoded and
resized by the same function as the prepare stage, in parallel threads, one
batch ahead of the model. Accepts a Keras model (`.keras`, loaded in safe
mode; run by LiteRT from its cached conversion unless --runtime keras, see
transfer.litert) or an exported TFLite model (`.tflite`). Class names come from
`classes.json` beside the model file, written by the pipeline (an exported
.tflite file also carries them in its metadata). The task (binary or K-class)
decides the label: see transfer.task.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transfer.errors import PipelineError
from transfer.images import try_load_image
from transfer.inference import with_mirror
from transfer.task import THRESHOLD

# What a folder search picks up; files named on the command line are always tried.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def find_images(paths):
    """Files to predict, in input order: files as given, folders searched recursively."""
    files = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                found
                for found in sorted(path.rglob("*"))
                if found.is_file()
                and found.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in found.relative_to(path).parts)
            )
        else:
            raise PipelineError(f"no such file or folder: {path}")
    return files


def decoded_batches(files, image_size, batch_size, pool):
    """Yield lists of (image or None, error or None), decoding one batch ahead."""
    batches = [files[start : start + batch_size] for start in range(0, len(files), batch_size)]

    def submit(batch):
        return [pool.submit(try_load_image, path, image_size) for path in batch]

    upcoming = submit(batches[0]) if batches else []
    for index in range(len(batches)):
        current = upcoming
        upcoming = submit(batches[index + 1]) if index + 1 < len(batches) else []
        yield [future.result() for future in current]


def predict_files(model, task, files, batch_size=64, threshold=THRESHOLD, progress=None, tta=False, top=0):
    """Yield one result dict per file, in order: path, label, score (and with
    top > 0, the top most probable classes); or path, error.

    tta: average each image's probabilities with its mirror's (twice the model calls).
    threshold: binary tasks only, on the probability of the second class.
    """
    if model.logit_width != task.logit_width:
        raise PipelineError(
            f"the model gives {model.logit_width} logits but classes.json names {task.num_classes} "
            f"classes ({task.logit_width} expected): they do not belong together"
        )
    logits_of = with_mirror(model.logits, task) if tta else model.logits
    done = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for batch in decoded_batches(files, model.image_size, batch_size, pool):
            good = [image for image, _ in batch if image is not None]
            logits = logits_of(np.stack(good)) if good else np.empty((0, task.logit_width))
            probabilities = task.probabilities(logits)
            predicted = task.predicted(probabilities, threshold)
            best = task.top(probabilities, top) if top else [None] * len(good)
            results = iter(zip(probabilities, predicted, best))
            for (image, error), path in zip(batch, files[done : done + len(batch)]):
                if image is None:
                    yield {"path": str(path), "error": error}
                    continue
                row, index, classes = next(results)
                result = {
                    "path": str(path),
                    "label": task.class_names[index],
                    "score": round(float(row[index]), 6),
                }
                if classes is not None:
                    result["top"] = [[name, round(probability, 6)] for name, probability in classes]
                yield result
            done += len(batch)
            if progress is not None:
                progress.update(len(batch))
