"""Stage 6: export the fine-tuned model (SavedModel, TFLite float32 and int8) and measure each file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from transfer.data import read_shards  # noqa: E402
from transfer.errors import run_stage  # noqa: E402
from transfer.export import (  # noqa: E402
    classes_json,
    encode_png,
    export_saved_model,
    export_tflite,
    file_size,
    load_serving,
    mean_latency_ms,
    plain_saved_model,
    serving_probabilities,
)
from transfer.io import atomic_path, write_json  # noqa: E402
from transfer.model import computing_in_float32, load_model  # noqa: E402
from transfer.params import load_params  # noqa: E402
from transfer.predict import CLASSES_FILE, TFLiteModel, read_class_names  # noqa: E402
from transfer.runtime import start  # noqa: E402
from transfer.task import Task  # noqa: E402


def first_images(split, count):
    images = []
    for shard_images, _, _ in read_shards("data/prepared", split):
        images.append(shard_images[: count - sum(len(part) for part in images)])
        if sum(len(part) for part in images) >= count:
            break
    return np.concatenate(images)


def main():
    params = load_params()
    with start(params["runtime"], training=False).scope():
        export_model(params["export"])


def export_model(config):
    model = load_model("models/model.keras")
    task = Task(read_class_names("models/model.keras"))
    test = list(read_shards("data/prepared", "test"))
    images = np.concatenate([shard[0] for shard in test])
    labels = np.concatenate([shard[1] for shard in test])
    timed = images[: config["latency_images"]].astype(np.float32)

    def accuracy(probabilities):
        return float(np.mean(task.predicted(probabilities) == labels))

    def tflite_probabilities(tflite):
        batches = [tflite.logits(images[start : start + 64]) for start in range(0, len(images), 64)]
        return task.probabilities(np.concatenate(batches))

    with atomic_path("export") as out:
        out.mkdir()
        (out / CLASSES_FILE).write_text(classes_json(task))
        export_saved_model(model, task, out / "saved_model")
        with plain_saved_model(computing_in_float32(model)) as saved_model:
            export_tflite(saved_model, task, out / "model_float32.tflite")
            calibration = first_images("train", config["calibration_images"])
            export_tflite(saved_model, task, out / "model_int8.tflite", calibration)

        report = {
            "keras": {
                "size_bytes": file_size("models/model.keras"),
                "accuracy": accuracy(task.probabilities(model.predict(images, batch_size=64, verbose=0))),
                "latency_ms": mean_latency_ms(lambda image: model.predict_on_batch(image[np.newaxis]), timed),
            }
        }
        encoded = encode_png(images)
        serve = load_serving(out / "saved_model")
        report["saved_model"] = {
            "size_bytes": file_size(out / "saved_model"),
            "accuracy": accuracy(serving_probabilities(serve, encoded)),
            "latency_ms": mean_latency_ms(
                lambda data: serve(image_bytes=tf.constant([data])), encoded[: len(timed)]
            ),
        }
        for name in ("float32", "int8"):
            tflite = TFLiteModel(out / f"model_{name}.tflite")
            report[f"tflite_{name}"] = {
                "size_bytes": file_size(out / f"model_{name}.tflite"),
                "accuracy": accuracy(tflite_probabilities(tflite)),
                "latency_ms": mean_latency_ms(
                    lambda image, tflite=tflite: tflite.logits(image[np.newaxis]), timed
                ),
            }
    write_json("metrics/export.json", {**report, "test_images": len(labels), "latency_images": len(timed)})


if __name__ == "__main__":
    run_stage(main)
