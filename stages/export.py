"""Stage 6: export the fine-tuned model (SavedModel, TFLite float32 and int8) and measure each file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script

import numpy as np  # noqa: E402

from transfer.data import image_count, read_shards  # noqa: E402
from transfer.errors import run_stage  # noqa: E402
from transfer.export import (  # noqa: E402
    classes_json,
    export_saved_model,
    export_tflite,
    file_size,
    load_serving,
    mean_latency_ms,
    serving_probabilities,
)
from transfer.io import atomic_path, write_json  # noqa: E402
from transfer.litert import TFLiteModel, plain_saved_model  # noqa: E402
from transfer.model import computing_in_float32, load_model  # noqa: E402
from transfer.originals import original_batches  # noqa: E402
from transfer.params import load_params  # noqa: E402
from transfer.predict import CLASSES_FILE, read_class_names  # noqa: E402
from transfer.progress import Progress  # noqa: E402
from transfer.runtime import RESOLVED_FILE, start  # noqa: E402
from transfer.task import Task  # noqa: E402

TEST_BATCH = 64  # inference batch for the accuracy of each exported format


def first_images(split, count):
    images = []
    for shard_images, _, _ in read_shards("data/prepared", split):
        images.append(shard_images[: count - sum(len(part) for part in images)])
        if sum(len(part) for part in images) >= count:
            break
    return np.concatenate(images)


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        export_model(params["export"], params["data"])


def export_model(config, data):
    model = load_model("models/model.keras")
    task = Task(read_class_names("models/model.keras"))

    with atomic_path("export") as out:
        out.mkdir()
        (out / CLASSES_FILE).write_text(classes_json(task))
        with Progress("export: converting", 3, unit="files") as progress:
            export_saved_model(model, task, out / "saved_model")
            progress.update(1)
            with plain_saved_model(computing_in_float32(model)) as saved_model:
                export_tflite(saved_model, task, out / "model_float32.tflite")
                progress.update(1)
                calibration = first_images("train", config["calibration_images"])
                with Progress("export: int8 calibration", len(calibration)) as calibrating:
                    export_tflite(saved_model, task, out / "model_int8.tflite", calibration, calibrating)
                progress.update(1)

        serve = load_serving(out / "saved_model")
        tflites = {name: TFLiteModel(out / f"model_{name}.tflite") for name in ("float32", "int8")}
        # Every format's probabilities on the test split's original files, through that format's
        # own preprocessing: the SavedModel gets the bytes; Keras and TFLite get the images a
        # client makes of them, as `predict` does. Streamed batch by batch: memory stays flat.
        probabilities_of = {
            "keras": lambda encoded, images: task.probabilities(np.asarray(model.predict_on_batch(images))),
            "saved_model": lambda encoded, images: serving_probabilities(serve, encoded),
            **{
                f"tflite_{name}": lambda encoded, images, tflite=tflite: task.probabilities(
                    tflite.logits(images)
                )
                for name, tflite in tflites.items()
            },
        }
        correct, count = dict.fromkeys(probabilities_of, 0), 0
        total = image_count("data/prepared", ["test"])
        timed = None  # the first latency_images files, each format's input
        with Progress("export: measuring every format", total) as progress:
            for encoded, images, labels in original_batches(data, "data/prepared", "test", TEST_BATCH):
                images = images.astype(np.float32)
                for name, probabilities in probabilities_of.items():
                    correct[name] += int(np.sum(task.predicted(probabilities(encoded, images)) == labels))
                count += len(labels)
                timed = timed or (encoded[: config["latency_images"]], images[: config["latency_images"]])
                progress.update(len(labels))

        timed_files, timed_images = timed
        latency = {
            "keras": mean_latency_ms(lambda image: model.predict_on_batch(image[np.newaxis]), timed_images),
            "saved_model": mean_latency_ms(lambda data: serving_probabilities(serve, [data]), timed_files),
            **{
                f"tflite_{name}": mean_latency_ms(
                    lambda image, tflite=tflite: tflite.logits(image[np.newaxis]), timed_images
                )
                for name, tflite in tflites.items()
            },
        }
        sizes = {
            "keras": file_size("models/model.keras"),
            "saved_model": file_size(out / "saved_model"),
            **{f"tflite_{name}": file_size(out / f"model_{name}.tflite") for name in tflites},
        }
        report = {
            name: {"size_bytes": sizes[name], "accuracy": correct[name] / count, "latency_ms": latency[name]}
            for name in probabilities_of
        }
    write_json("metrics/export.json", {**report, "test_images": count, "latency_images": len(timed_images)})


if __name__ == "__main__":
    run_stage(main)
