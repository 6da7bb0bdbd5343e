"""Run a trained model on image files: `python -m transfer predict`.

Works on raw photos of any size and common format: images are decoded and
resized by the same function as the prepare stage, in parallel threads, one
batch ahead of the model. Accepts a Keras model (`.keras`, loaded in safe
mode) or an exported TFLite model (`.tflite`). Class names come from
`classes.json` beside the model file, written by the pipeline.
"""

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transfer.data import try_load_image
from transfer.errors import PipelineError
from transfer.evaluation import with_mirror
from transfer.reports import THRESHOLD, sigmoid

CLASSES_FILE = "classes.json"
# What a folder search picks up; files named on the command line are always tried.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def read_class_names(model_path):
    path = Path(model_path).parent / CLASSES_FILE
    if not path.is_file():
        raise PipelineError(f"class names not found: {path} (it is written beside the model by the pipeline)")
    return json.loads(path.read_text())["class_names"]


class KerasModel:
    def __init__(self, path):
        from transfer.model import load_model

        self.model = load_model(path)
        self.image_size = self.model.input_shape[1]

    def logits(self, images):
        return np.asarray(self.model.predict_on_batch(images)).reshape(-1)


class TFLiteModel:
    """A .tflite file run by LiteRT's interpreter (ai-edge-litert)."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.image_size = int(self.input["shape"][1])
        self.batch = None

    def logits(self, images):
        if self.batch != len(images):
            self.interpreter.resize_tensor_input(self.input["index"], [len(images), *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self.input["index"], images.astype(np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).reshape(-1).astype(np.float64)


def open_model(path):
    """A KerasModel or TFLiteModel, by the file's suffix."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"model not found: {path}")
    if path.suffix == ".tflite":
        return TFLiteModel(path)
    if path.suffix == ".keras":
        return KerasModel(path)
    raise PipelineError(f"unsupported model file: {path} (expected .keras or .tflite)")


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


def predict_files(model, class_names, files, batch_size=64, threshold=THRESHOLD, progress=None, tta=False):
    """Yield one result dict per file, in order: path, label, score; or path, error.

    tta: average each image's probability with its mirror's (twice the model calls).
    """
    logits_of = with_mirror(model.logits) if tta else model.logits
    done = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for batch in decoded_batches(files, model.image_size, batch_size, pool):
            good = [image for image, _ in batch if image is not None]
            probabilities = iter(sigmoid(logits_of(np.stack(good))) if good else [])
            for (image, error), path in zip(batch, files[done : done + len(batch)]):
                if image is None:
                    yield {"path": str(path), "error": error}
                    continue
                probability = float(next(probabilities))
                predicted = int(probability > threshold)
                score = probability if predicted else 1 - probability
                yield {"path": str(path), "label": class_names[predicted], "score": round(score, 6)}
            done += len(batch)
            if progress:
                progress(done, len(files))


class Progress:
    """A progress line on stderr, redrawn at most twice a second (TTYs only)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.start = self.last = time.monotonic()

    def __call__(self, done, total):
        now = time.monotonic()
        if now - self.last < 0.5 and done < total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        self.stream.write(f"\r{done}/{total} images, {rate:.0f} images/s")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()
