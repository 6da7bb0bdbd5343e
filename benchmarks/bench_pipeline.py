"""The whole `dvc repro` against the tutorial's way as one uncached script."""

import sys

from common import ROOT, folder_repo, run_process

from transfer.core.records import read_record


def bench_pipeline(work, photos, weights, run_tutorial, size=160, epochs=10):
    more = {"data.image_size": size, "train_head.epochs": epochs, "finetune.epochs": epochs}
    repo = folder_repo(work / "pipeline", photos, weights, **more)
    seconds, output = run_process(["dvc", "repro"], repo)
    stage_lines = [line for line in output.splitlines() if line.startswith("Running stage")]
    result = {"pipeline_s": seconds, "stages": len(stage_lines)}
    result["eval"] = read_record("eval", repo)
    result["eval"] = {model: result["eval"][model]["accuracy"] for model in ("head", "finetuned")}
    if run_tutorial:
        command = [sys.executable, str(ROOT / "benchmarks" / "tutorial.py"), "--photos", str(photos)]
        command += [
            "--weights",
            str(weights),
            "--image-size",
            str(size),
            "--head-epochs",
            str(epochs),
            "--finetune-epochs",
            str(epochs),
        ]
        result["tutorial_s"], _ = run_process(command, repo)
        result["ratio"] = result["pipeline_s"] / result["tutorial_s"]
    return result
