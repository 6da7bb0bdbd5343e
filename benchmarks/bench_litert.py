"""LiteRT (XNNPACK) against TensorFlow: extract's forward pass and whole predict commands."""

import json
import os
import statistics
import sys
import tempfile

import numpy as np
from common import ROOT, median_rate, run_process, timed


def bench_litert(work, prepared, photos, weights, repeats, size=160, batch_size=64):
    """LiteRT (XNNPACK) against TensorFlow: extract's forward pass, and whole predict commands."""
    from transfer.export import export_tflite
    from transfer.features import extract_all
    from transfer.inference import outputs_of
    from transfer.litert import plain_saved_model
    from transfer.model import build_base, build_classifier, build_feature_extractor, build_head
    from transfer.shards import SPLITS, image_count, read_shards
    from transfer.task import Task

    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # a cold cache: the conversion is timed once
    extractor = build_feature_extractor(build_base(size, weights))
    images = np.concatenate([shard[0] for split in SPLITS for shard in read_shards(prepared, split)])
    images = images[: len(images) // batch_size * batch_size]  # full batches, as extract runs them
    conversion_s = timed(lambda: outputs_of(extractor, "litert"))
    runs = {"tensorflow": extractor.predict_on_batch, "litert": outputs_of(extractor, "litert")}

    def forward(name):
        for start in range(0, len(images), batch_size):
            runs[name](images[start : start + batch_size])

    def stage():
        with tempfile.TemporaryDirectory() as out:
            extract_all(extractor, prepared, out, batch_size, runs["litert"])

    for name in runs:
        forward(name)  # warm-up: tracing, kernel selection, XNNPACK packing
    times = {"tensorflow": [], "litert": [], "litert_stage": []}
    for _ in range(repeats):
        for name in runs:
            times[name].append(timed(lambda name=name: forward(name)))
        times["litert_stage"].append(timed(stage))
    count = image_count(prepared, SPLITS)
    extract = {
        "images": len(images),
        "size": size,
        "tensorflow": median_rate(len(images), times["tensorflow"]),
        "litert": median_rate(len(images), times["litert"]),
        "litert_stage": median_rate(count, times["litert_stage"]),
        "conversion_s": conversion_s,
    }
    extract["ratio"] = extract["litert"] / extract["tensorflow"]

    # predict: whole commands (start-up included) on the 1,000 validation photos, a 160 px
    # classifier (real base, random head: speed does not depend on the head's weights).
    folder = photos / "validation"
    files = len(list(folder.rglob("*.jpg")))
    model_dir = work / "predict"
    model_dir.mkdir()
    model = build_classifier(build_base(size, weights), build_head())
    model.save(model_dir / "model.keras")
    task = Task(["cats", "dogs"])
    (model_dir / "classes.json").write_text(json.dumps({"class_names": task.class_names}))
    with plain_saved_model(model) as saved_model:
        export_tflite(saved_model, task, model_dir / "model_float32.tflite")
        export_tflite(saved_model, task, model_dir / "model_int8.tflite", images[:200])
    predict = [sys.executable, "-m", "transfer", "predict"]
    commands = {
        "keras_runtime_keras": [*predict, "--runtime", "keras", model_dir / "model.keras", folder],
        "keras_runtime_litert": [*predict, "--runtime", "litert", model_dir / "model.keras", folder],
        "tflite_float32": [*predict, model_dir / "model_float32.tflite", folder],
        "tflite_int8": [*predict, model_dir / "model_int8.tflite", folder],
    }
    first_litert_s, _ = run_process(commands["keras_runtime_litert"], ROOT)  # converts and caches
    seconds = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            seconds[name].append(run_process(command, ROOT)[0])
    result = {name: {"seconds": statistics.median(times)} for name, times in seconds.items()}
    result["keras_runtime_litert_first"] = {"seconds": first_litert_s}
    for run in result.values():
        run["photos_per_s"] = files / run["seconds"]
        run["vs_keras"] = result["keras_runtime_keras"]["seconds"] / run["seconds"]
    return {"extract": extract, "predict": {"photos": files, **result}}
