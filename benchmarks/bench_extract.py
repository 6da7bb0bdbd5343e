"""The extract stage's code against the raw forward pass of the same model (its ceiling)."""

import tempfile

import numpy as np
from common import median_rate, timed


def bench_extract(prepared, weights, size, batch_size, repeats):
    from transfer.data.features import extract_all
    from transfer.data.shards import SPLITS, image_count, read_shards
    from transfer.inference.runners import KerasRunner
    from transfer.models.networks import build_base, build_feature_extractor

    extractor = build_feature_extractor(build_base(size, weights))
    images = np.concatenate([shard[0] for split in SPLITS for shard in read_shards(prepared, split)])
    count = image_count(prepared, SPLITS)

    def ceiling():
        for start in range(0, len(images), batch_size):
            extractor.predict_on_batch(images[start : start + batch_size])

    def project():
        with tempfile.TemporaryDirectory() as out:
            extract_all(KerasRunner(extractor), prepared, out, batch_size)

    ceiling()  # warm-up: tracing and oneDNN kernel selection
    project()
    project_times, ceiling_times = [], []
    for _ in range(repeats):
        project_times.append(timed(project))
        ceiling_times.append(timed(ceiling))
    rates = {"project": median_rate(count, project_times), "ceiling": median_rate(count, ceiling_times)}
    return {"images": count, "batch_size": batch_size, **rates, "ratio": rates["project"] / rates["ceiling"]}
