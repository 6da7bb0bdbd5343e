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
    from transfer.core.artifacts import write_calibration
    from transfer.core.task import Task
    from transfer.data.features import extract_all
    from transfer.data.shards import SPLITS, image_count, read_shards
    from transfer.deploy.export import tflite
    from transfer.deploy.export.formats import ExportJob
    from transfer.inference.bundle import open_bundle
    from transfer.inference.deployed import keras_network
    from transfer.inference.runners import network_runner
    from transfer.models.networks import build_base, build_classifier, build_feature_extractor, build_head

    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # a cold cache: the conversion is timed once
    extractor = build_feature_extractor(build_base(size, weights))
    shards = [shard for split in SPLITS for shard in read_shards(prepared, split)]
    images, labels = np.concatenate([shard[0] for shard in shards]), np.concatenate([s[1] for s in shards])
    full_batches = max(1, len(images) // batch_size) * batch_size  # as extract runs them
    images, labels = images[:full_batches], labels[:full_batches]
    conversion_s = timed(lambda: network_runner(extractor, "litert"))
    litert = network_runner(extractor, "litert")
    runs = {"tensorflow": extractor.predict_on_batch, "litert": litert.run}

    def forward(name):
        for start in range(0, len(images), batch_size):
            runs[name](images[start : start + batch_size])

    def stage():
        with tempfile.TemporaryDirectory() as out:
            extract_all(litert, prepared, out, batch_size)

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

    # predict: whole commands (start-up included) on the 1,000 validation photos, with the model
    # as the pipeline ships it: a 160 px classifier (real base, random head: speed does not
    # depend on the head's weights) with its calibration beside it (knn novelty, params.yaml's).
    folder = photos / "validation"
    files = len(list(folder.rglob("*.jpg")))
    model_dir = work / "predict"
    model_dir.mkdir()
    model = build_classifier(build_base(size, weights), build_head())
    model.save(model_dir / "model.keras")
    task = Task(["cats", "dogs"])
    (model_dir / "classes.json").write_text(json.dumps({"class_names": task.class_names}))
    calibration, novelty_statistics = benchmark_calibration(model, images, labels)
    write_calibration(model_dir, calibration, novelty_statistics)
    bundle = open_bundle(model_dir / "model.keras")
    with ExportJob(bundle, keras_network(bundle), {"calibration_images": 200}, prepared) as job:
        tflite.write_float32(job, model_dir / "model_float32.tflite")
        tflite.write_int8(job, model_dir / "model_int8.tflite")
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


def benchmark_calibration(model, images, labels):
    """A calibration as the calibrate stage writes one (temperature 1: speed does not depend on
    it; knn novelty over the photos' features, its threshold accepting 98% of them)."""
    import keras

    from transfer.calibration.novelty import get_method

    pooled = keras.Model(model.input, model.get_layer("pool").output).predict(images, verbose=0)
    settings = {"method": "knn", "accept": 0.98, "neighbours": 5, "bank_size": 10000}
    method = get_method("knn")
    fitted = method.fit(pooled, labels, 2, settings, 0)
    settings["threshold"] = float(np.quantile(method.scores(pooled, None, fitted, settings), 0.98))
    return {"temperature": 1.0, "fitted_on": "benchmark", "novelty": settings}, fitted
