"""The select stage's work: the pool's photos decoded, embedded by the backbone and scored by
the calibrated model, then ranked by a strategy (transfer.labelling.strategies)."""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from transfer.calibration.novelty import is_known
from transfer.core import artifacts
from transfer.core.progress import Progress
from transfer.data.pool import pool_photos, read_labels
from transfer.data.shards import image_count
from transfer.deploy.predict import decoded_batches
from transfer.distribute.runtime import RESOLVED_FILE, start
from transfer.inference.bundle import open_bundle
from transfer.inference.runners import bundle_runner, network_runner
from transfer.labelling.strategies import select
from transfer.models.networks import build_base, build_feature_extractor


def score_pool(folder, paths, runner, task, extractor, batch_size):
    """(readable paths, features, calibrated probabilities, novelty, skipped [(path, reason)]) of
    the pool's photos: one decode, the deployed model and the backbone on each batch."""
    kept, features, probabilities, novelty, skipped = [], [], [], [], []
    files = [folder / path for path in paths]
    done = 0
    with (
        ThreadPoolExecutor(max_workers=os.cpu_count()) as pool,
        Progress("select: pool", len(files)) as progress,
    ):
        for batch in decoded_batches(files, runner.image_size, batch_size, pool):
            names = paths[done : done + len(batch)]
            done += len(batch)
            good = [image for image, _ in batch if image is not None]
            skipped += [
                (name, f"unreadable: {error}") for name, (image, error) in zip(names, batch) if image is None
            ]
            kept += [name for name, (image, _) in zip(names, batch) if image is not None]
            if good:
                images = np.stack(good)
                outputs = runner.run(images)
                probabilities.append(task.probabilities(outputs["logits"]))
                novelty.append(np.asarray(outputs["novelty"], np.float64).reshape(-1))
                features.append(np.asarray(extractor.run(images)["logits"], np.float32))
            progress.update(len(batch))
    width = extractor.logit_width
    return (
        kept,
        np.concatenate(features) if features else np.empty((0, width), np.float32),
        np.concatenate(probabilities) if probabilities else np.empty((0, 2)),
        np.concatenate(novelty) if novelty else np.empty(0),
        skipped,
    )


def ranked_rows(
    paths, features, probabilities, novelty, threshold, class_names, strategy, batch, labelled, seed
):
    """(to_label rows: the batch the strategy picks among the known photos, best first;
    unknown rows: the photos the novelty check rejects, most novel first, listed apart)."""
    known = is_known(novelty, threshold)
    candidates = np.flatnonzero(known)
    chosen, reasons = select(strategy, features[candidates], probabilities[candidates], labelled, batch, seed)
    rows = []
    for rank, (row, why) in enumerate(zip(candidates[chosen], reasons), start=1):
        suggested = int(np.argmax(probabilities[row]))
        rows.append(
            {
                "rank": rank,
                "path": paths[row],
                "suggested": class_names[suggested],
                "probability": round(float(probabilities[row, suggested]), 6),
                "known": True,
                "novelty": round(float(novelty[row]), 6),
                "why": why,
            }
        )
    rejected = np.flatnonzero(~known)
    unknown = [
        {
            "path": paths[row],
            "suggested": class_names[int(np.argmax(probabilities[row]))],
            "probability": round(float(probabilities[row].max()), 6),
            "novelty": round(float(novelty[row]), 6),
        }
        for row in rejected[np.argsort(-novelty[rejected], kind="stable")]
    ]
    return rows, unknown


def rank_pool(params, folder):
    """(to_label rows, unknown rows, the select record) of the pool in folder: its photos not in
    data/labels.csv, scored by models/model.keras and ranked by select.strategy."""
    labelled = read_labels(params["data"])
    paths = [path for path in pool_photos(folder) if path not in labelled]
    bundle = open_bundle(artifacts.MODEL)
    threshold = bundle.required_calibration()["novelty"]["threshold"]
    model = params["model"]
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        base = build_base(params["data"]["image_size"], model["weights"], model["backbone"])
        extractor = network_runner(build_feature_extractor(base), "keras", params["runtime"]["threads"])
        runner = bundle_runner(bundle, "keras")
        kept, features, probabilities, novelty, skipped = score_pool(
            folder, paths, runner, bundle.task, extractor, params["select"]["batch_size"]
        )
    select = params["select"]
    to_label, unknown = ranked_rows(
        kept,
        features,
        probabilities,
        novelty,
        threshold,
        bundle.task.class_names,
        select["strategy"],
        select["batch"],
        labelled=image_count(artifacts.PREPARED, ["train"]),
        seed=params["data"]["seed"],
    )
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    record = {
        "pool": len(paths),
        "unreadable": len(skipped),
        "to_label": len(to_label),
        "unknown": len(unknown),
    }
    return to_label, unknown, {**record, "labelled": len(labelled), "strategy": select["strategy"]}
