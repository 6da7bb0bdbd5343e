"""Each novelty score (transfer.calibration.novelty) of a trained project, on photos of none of its classes.

    cd <a project after dvc repro> && python <this checkout>/benchmarks/novelty_proxies.py \
        --unknown ../shared/data/flower_photos [--accept 0.95 0.98]

The fine-tuned model's pooled features and logits of the prepared train, validation and test
splits and of every photo under --unknown (the calibrate stage's own code); for each method
fitted as the calibrate stage fits it (params.yaml's calibrate section, data.seed): the AUROC
of the test photos against the unknown ones, and at each threshold set on validation to
accept at least that share: the share of test photos accepted and of unknown photos rejected.
Prints a table and writes novelty_proxies.json in the working directory.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unknown", type=Path, required=True, help="photos of none of the classes")
    parser.add_argument("--accept", type=float, nargs="+", default=[0.95, 0.98])
    args = parser.parse_args()
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    sys.path.insert(0, str(Path.cwd()))  # the project's own transfer package, as its stages run it

    import keras

    from transfer.calibration.fitting import pooled_and_logits
    from transfer.calibration.novelty import accepted_share, all_methods, threshold_accepting
    from transfer.calibration.temperature import fit_temperature, scaled
    from transfer.config.params import load_params
    from transfer.core.artifacts import MODEL
    from transfer.data.images import find_images, load_image
    from transfer.inference.bundle import open_bundle
    from transfer.models.loading import load_model
    from transfer.reporting.metrics import roc_auc

    params = load_params()
    config, seed = params["calibrate"], params["data"]["seed"]
    task = open_bundle(MODEL).task
    model = load_model(MODEL)
    splits = {
        split: pooled_and_logits(model, split, config["batch_size"])
        for split in ("train", "validation", "test")
    }
    files = find_images([args.unknown])
    size = model.input_shape[1]
    both = keras.Model(model.input, [model.get_layer("pool").output, model.output])
    unknown_pooled, unknown_logits = [], []
    for start in range(0, len(files), 64):
        images = np.stack([load_image(path, size) for path in files[start : start + 64]])
        pooled, logits = both.predict_on_batch(images)
        unknown_pooled.append(np.asarray(pooled))
        unknown_logits.append(np.asarray(logits, np.float64).reshape(len(logits), -1))
    splits["unknown"] = (np.concatenate(unknown_pooled), np.concatenate(unknown_logits), None)

    temperature = fit_temperature(task, splits["validation"][2], splits["validation"][1])
    results = {"unknown_folder": str(args.unknown), "unknown_photos": len(files), "methods": {}}
    print(f"{len(files)} unknown photos; temperature {temperature:.4f}")
    for method in all_methods():
        settings = method.settings(config)
        statistics = method.fit(splits["train"][0], splits["train"][2], task.num_classes, settings, seed)
        scores = {
            name: method.scores(pooled, task.probabilities(scaled(logits, temperature)), statistics, settings)
            for name, (pooled, logits, _) in splits.items()
            if name != "train"
        }
        known, unknown = scores["test"], scores["unknown"]
        row = {"auroc": roc_auc(np.r_[np.zeros(len(known)), np.ones(len(unknown))], np.r_[known, unknown])}
        for accept in args.accept:
            threshold = threshold_accepting(scores["validation"], accept)
            row[str(accept)] = {
                "test_accepted": accepted_share(scores["test"], threshold),
                "unknown_rejected": 1 - accepted_share(scores["unknown"], threshold),
            }
        results["methods"][method.name] = row
        cells = "  ".join(
            f"accept {accept}: test {row[str(accept)]['test_accepted']:.3f} "
            f"rejected {row[str(accept)]['unknown_rejected']:.3f}"
            for accept in args.accept
        )
        print(f"{method.name:16s} AUROC {row['auroc']:.4f}  {cells}")
    Path("novelty_proxies.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
