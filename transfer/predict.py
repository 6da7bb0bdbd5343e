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
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transfer.artifacts import CALIBRATION_FILE, NOVELTY_FILE, read_calibration
from transfer.errors import PipelineError
from transfer.images import try_load_image
from transfer.inference import TFLiteModel, named_outputs, with_mirror
from transfer.litert import ConversionError, keras_file_as_tflite
from transfer.task import THRESHOLD


class KerasModel:
    """A .keras file run by Keras: with calibration.json beside it, the deployed model."""

    def __init__(self, path):
        from transfer.deployed import load_deployed

        self.model, self.calibration = load_deployed(path)
        self.image_size = self.model.input_shape[1]
        output = self.model.output
        self.logit_width = (output["logits"] if isinstance(output, dict) else output).shape[-1]

    def run(self, images):
        return named_outputs(self.model.predict_on_batch(images))

    def logits(self, images):
        return self.run(images)["logits"].astype(np.float64)


def calibration_companions(path):
    """The calibration files beside a .keras model, if it has been calibrated."""
    companions = [Path(path).parent / CALIBRATION_FILE, Path(path).parent / NOVELTY_FILE]
    return companions if all(file.is_file() for file in companions) else []


def keras_file_as_deployed_tflite(path):
    """The cached float32 .tflite bytes of what KerasModel(path) runs. Keras and TensorFlow
    are imported only to convert: a cached conversion runs on LiteRT alone."""

    def load():
        from transfer.deployed import load_deployed

        return load_deployed(path)[0]

    companions = calibration_companions(path)
    if not companions:
        return keras_file_as_tflite(path)
    return keras_file_as_tflite(path, load=load, companions=companions)


def open_model(path, runtime="auto"):
    """A KerasModel or TFLiteModel for a .keras or .tflite file.

    runtime: a .tflite file runs in LiteRT (auto, litert). A .keras file runs in
    Keras (keras), or in LiteRT from its cached float32 conversion (litert); auto
    is LiteRT, and Keras with one notice on stderr if the conversion fails.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"model not found: {path}")
    if path.suffix not in (".keras", ".tflite"):
        raise PipelineError(f"unsupported model file: {path} (expected .keras or .tflite)")
    if path.suffix == ".tflite":
        if runtime == "keras":
            raise PipelineError(f"--runtime keras needs a .keras model; {path} is a TFLite file")
        return TFLiteModel(path, calibration=read_calibration(path)[0])
    if runtime == "keras":
        return KerasModel(path)

    try:
        return TFLiteModel(keras_file_as_deployed_tflite(path), calibration=read_calibration(path)[0])
    except ConversionError as error:
        if runtime == "litert":
            raise PipelineError(f"cannot run {path} with LiteRT: {error}") from None
        print(f"notice: running {path} with Keras: LiteRT cannot ({error})", file=sys.stderr)
        return KerasModel(path)


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
    model, task, files, batch_size=64, threshold=THRESHOLD, progress=None, tta=False, top=0, reject=False
):
    """Yield one result dict per file, in order: path, label, score (and with top > 0,
    the top most probable classes), and for a calibrated model known and novelty; or
    path, error.

    A calibrated model's probabilities are calibrated (transfer.deployed); `known` is its
    novelty score at or below the saved threshold. reject: label None for unknown photos.
    tta: average each image's probabilities with its mirror's (twice the model calls), and
    the two novelty scores. threshold: binary tasks only, on the probability of the second class.
    """
    if model.logit_width != task.logit_width:
        raise PipelineError(
            f"the model gives {model.logit_width} logits but classes.json names {task.num_classes} "
            f"classes ({task.logit_width} expected): they do not belong together"
        )
    novelty_threshold = model.calibration["novelty"]["threshold"] if model.calibration else None
    if reject and novelty_threshold is None:
        raise PipelineError(
            "--reject needs a calibrated model: no calibration.json beside it "
            "(run dvc repro, or use an export)"
        )
    run = with_mirror(model.run, task) if tta else model.run
    done = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for batch in decoded_batches(files, model.image_size, batch_size, pool):
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
                    result["known"] = bool(score <= novelty_threshold)
                    result["novelty"] = round(float(score), 6)
                    if reject and not result["known"]:
                        result["label"] = None
                yield result
            done += len(batch)
            if progress is not None:
                progress.update(len(batch))
