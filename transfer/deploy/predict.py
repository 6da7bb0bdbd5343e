"""Run a trained model on image files: `transfer predict`.

Works on raw photos of any size and common format: images are decoded and
resized by the same function as the prepare stage, in parallel threads, one
batch ahead of the model. The model is a ModelBundle (transfer.inference.bundle:
a `.keras` file with its classes and calibration beside it, or an exported
`.tflite` or `.onnx` file) run by a runner (transfer.inference.runners). The task (binary
or K-class) decides the label: see transfer.core.task.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from transfer.calibration.novelty import is_known
from transfer.core.errors import PipelineError
from transfer.core.task import THRESHOLD
from transfer.data.images import try_load_image
from transfer.inference.runners import with_mirror


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


def predict_files(
    runner, bundle, files, batch_size=64, threshold=THRESHOLD, progress=None, tta=False, top=0, reject=False
):
    """Yield one result dict per file, in order: path, label, score (and with top > 0,
    the top most probable classes), and for a calibrated model known and novelty; or
    path, error. runner: transfer.inference.runners.bundle_runner(bundle).

    A calibrated model's probabilities are calibrated (transfer.inference.deployed); `known`
    is its novelty score at or below the saved threshold. reject: label None for unknown photos.
    tta: average each image's probabilities with its mirror's (twice the model calls), and
    the two novelty scores. threshold: binary tasks only, on the probability of the second class.
    """
    task = bundle.task
    if runner.logit_width != task.logit_width:
        raise PipelineError(
            f"the model gives {runner.logit_width} logits but classes.json names {task.num_classes} "
            f"classes ({task.logit_width} expected): they do not belong together"
        )
    novelty_threshold = bundle.novelty_threshold
    if reject and novelty_threshold is None:
        raise PipelineError(
            "--reject needs a calibrated model: no calibration.json beside it "
            "(run dvc repro, or use an export)"
        )
    run = with_mirror(runner.run, task) if tta else runner.run
    done = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for batch in decoded_batches(files, runner.image_size, batch_size, pool):
            good = [image for image, _ in batch if image is not None]
            outputs = run(np.stack(good)) if good else {"logits": np.empty((0, task.logit_width))}
            probabilities = task.probabilities(outputs["logits"])
            predicted = task.predicted(probabilities, threshold)
            best = task.top(probabilities, top) if top else [None] * len(good)
            novelty = outputs.get("novelty", np.full((len(good), 1), np.nan)).reshape(-1)
            results = iter(zip(probabilities, predicted, best, novelty))
            for (image, error), path in zip(batch, files[done : done + len(batch)]):
                if image is None:
                    yield {"path": str(path), "error": error}
                    continue
                row, index, classes, score = next(results)
                result = {
                    "path": str(path),
                    "label": task.class_names[index],
                    "score": round(float(row[index]), 6),
                }
                if classes is not None:
                    result["top"] = [[name, round(probability, 6)] for name, probability in classes]
                if novelty_threshold is not None:
                    result["known"] = bool(is_known(score, novelty_threshold))
                    result["novelty"] = round(float(score), 6)
                    if reject and not result["known"]:
                        result["label"] = None
                yield result
            done += len(batch)
            if progress is not None:
                progress.update(len(batch))
