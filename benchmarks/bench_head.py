"""A head-only experiment from cache against the tutorial's way, whole processes."""

import statistics
import sys

import numpy as np
from common import ROOT, run_process


def bench_head(repo, photos, weights, size, repeats, epochs_list=(2, 10)):
    run_process(["dvc", "repro", "train_head"], repo)  # a full run of everything the head needs
    results = {}
    rate = iter(np.linspace(2e-4, 9e-4, 100))  # a new learning rate each time: never a run-cache hit
    for epochs in epochs_list:
        ours, theirs = [], []
        for repeat in range(repeats):
            command = ["dvc", "exp", "run", "train_head", "-S", f"train_head.learning_rate={next(rate):.6g}"]
            ours.append(run_process([*command, "-S", f"train_head.epochs={epochs}"], repo)[0])
            if repeat == 0 or epochs < 10:  # the tutorial's 10 epochs take minutes: once
                tutorial = [sys.executable, str(ROOT / "benchmarks" / "tutorial.py"), "--photos", str(photos)]
                tutorial += [
                    "--weights",
                    str(weights),
                    "--image-size",
                    str(size),
                    "--head-epochs",
                    str(epochs),
                ]
                theirs.append(run_process(tutorial, repo)[0])
        results[f"{epochs}_epochs"] = {
            "pipeline_s": statistics.median(ours),
            "tutorial_s": statistics.median(theirs),
            "speedup": statistics.median(theirs) / statistics.median(ours),
            "runs": {"pipeline": len(ours), "tutorial": len(theirs)},
        }
    return results
