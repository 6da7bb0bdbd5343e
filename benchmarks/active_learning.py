"""Which photos to label next, simulated: a labelled folder as the pool with its labels hidden.

    python benchmarks/active_learning.py --photos ../shared/data/flower_photos --image-size 224
    python benchmarks/active_learning.py --photos ../shared/data/cats_and_dogs_filtered --image-size 160

The photos' features come from the pipeline itself (prepare and extract of a project copy,
MobileNetV2 with the shared weights). Then, per seed: a fixed stratified test split (20%), the
rest is the pool; a seeded start of --start-per-class labelled photos of each class; each round
trains the head on the labelled photos' cached features (scikit-learn's logistic regression on
standardised features, as the audit's; seconds), scores the test split, and asks each strategy
of transfer.labelling.strategies for --batch more photos, whose labels are then revealed.
Printed per strategy (mean over seeds, with the spread): accuracy against labels used, the
labels needed to come within 1 point of the accuracy with every label, as a ratio to random's,
and the most it falls below random at any round.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import add_weights_argument, folder_repo, measurement_stamp

from transfer.data.features import load_features
from transfer.data.shards import SPLITS
from transfer.labelling.strategies import STRATEGIES, select

WITHIN = 0.01  # "within 1 point" of the accuracy with every label


def pipeline_features(work, photos, weights, image_size):
    repo = folder_repo(work / "repo", photos, weights, **{"data.image_size": image_size})
    for stage in ("runtime", "prepare", "extract"):
        subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=repo, check=True, capture_output=True)
    parts = [load_features(repo / "data" / "features", split) for split in SPLITS]
    features = np.concatenate([np.asarray(part[0]) for part in parts])
    labels = np.concatenate([np.asarray(part[1]) for part in parts]).astype(np.int64)
    return features, labels


def head_accuracy(features, labels, rows, test_rows, test_labels):
    """(test accuracy, the head's probabilities for every photo) of a head fitted on rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))
    model.fit(features[rows], labels[rows])
    accuracy = float(np.mean(model.predict(features[test_rows]) == test_labels))
    probabilities = np.zeros((len(features), int(labels.max()) + 1))
    probabilities[:, model.classes_] = model.predict_proba(features)
    return accuracy, probabilities


def one_seed(features, labels, strategies, seed, batch, start_per_class, budget):
    """{strategy: [(labels used, test accuracy), ...]} and the accuracy with every pool label."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    pool, test = train_test_split(rows, test_size=0.2, stratify=labels, random_state=seed)
    rng = np.random.default_rng(seed)
    start = np.concatenate(
        [
            rng.choice(pool[labels[pool] == label], start_per_class, replace=False)
            for label in np.unique(labels)
        ]
    )
    full, _ = head_accuracy(features, labels, pool, test, labels[test])
    curves = {}
    for name in strategies:
        labelled = list(start)
        curve = []
        for round_ in range(10_000):
            accuracy, probabilities = head_accuracy(features, labels, labelled, test, labels[test])
            curve.append((len(labelled), accuracy))
            unlabelled = np.setdiff1d(pool, labelled)
            if len(labelled) >= budget or len(unlabelled) == 0:
                break
            chosen, _ = select(
                name,
                features[unlabelled],
                probabilities[unlabelled],
                len(labelled),
                batch,
                seed * 1000 + round_,
            )
            labelled.extend(unlabelled[chosen].tolist())
        curves[name] = curve
    return curves, full


def labels_needed(curve, target):
    """The labels used at the first round within WITHIN of target (the last round's if never)."""
    return next((used for used, accuracy in curve if accuracy >= target - WITHIN), curve[-1][0])


def summarise(runs, fulls, strategies):
    target = statistics.mean(fulls)
    summary = {}
    for name in strategies:
        length = min(len(run[name]) for run in runs)
        used = [runs[0][name][index][0] for index in range(length)]
        accuracy = np.array([[run[name][index][1] for index in range(length)] for run in runs])
        mean = accuracy.mean(axis=0)
        summary[name] = {
            "labels": used,
            "mean_accuracy": [round(float(value), 4) for value in mean],
            "spread": [round(float(value), 4) for value in accuracy.std(axis=0)],
            "labels_needed": labels_needed(list(zip(used, mean)), target),
            "labels_needed_per_seed": [labels_needed(run[name], full) for run, full in zip(runs, fulls)],
        }
    random = summary["random"]
    for name in strategies:
        entry = summary[name]
        entry["ratio_to_random"] = round(entry["labels_needed"] / random["labels_needed"], 3)
        entry["ratio_to_random_per_seed"] = [
            round(mine / theirs, 3)
            for mine, theirs in zip(entry["labels_needed_per_seed"], random["labels_needed_per_seed"])
        ]
        common = min(len(entry["mean_accuracy"]), len(random["mean_accuracy"]))
        gaps = np.array(entry["mean_accuracy"][:common]) - np.array(random["mean_accuracy"][:common])
        entry["most_below_random"] = round(float(max(0.0, -gaps.min())), 4)
    return {
        "all_labels_accuracy": round(target, 4),
        "all_labels_spread": round(float(np.std(fulls)), 4),
        "strategies": summary,
    }


def plot(summary, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, entry in summary["strategies"].items():
        mean, spread = np.array(entry["mean_accuracy"]), np.array(entry["spread"])
        axis.plot(entry["labels"], mean, label=f"{name} ({entry['ratio_to_random']:.2f}x random's labels)")
        axis.fill_between(entry["labels"], mean - spread, mean + spread, alpha=0.15)
    axis.axhline(
        summary["all_labels_accuracy"] - WITHIN, color="grey", linestyle=":", label="every label - 1 point"
    )
    axis.set(xlabel="labelled photos", ylabel="test accuracy (mean over seeds)", title=title)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", required=True)
    add_weights_argument(parser)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--start-per-class", type=int, default=10)
    parser.add_argument(
        "--budget", type=int, default=0, help="stop each run at this many labels (0: the whole pool)"
    )
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--plot", help="write the curves to this PNG")
    parser.add_argument("--features", help="an .npz to keep the extracted features in (and read them from)")
    args = parser.parse_args()
    strategies = ["random", *[name for name in args.strategies if name != "random"]]
    if args.features and Path(args.features).is_file():
        with np.load(args.features) as kept:  # written by this script (below), never a pickle
            features, labels = kept["features"], kept["labels"]
    else:
        with tempfile.TemporaryDirectory() as temporary:
            features, labels = pipeline_features(
                Path(temporary), Path(args.photos).resolve(), Path(args.weights).resolve(), args.image_size
            )
        if args.features:
            np.savez(args.features, features=features, labels=labels)
    budget = args.budget or len(labels)
    runs, fulls = [], []
    for seed in args.seeds:
        curves, full = one_seed(features, labels, strategies, seed, args.batch, args.start_per_class, budget)
        runs.append(curves)
        fulls.append(full)
    summary = summarise(runs, fulls, strategies)
    if args.plot:
        plot(summary, args.plot, f"{Path(args.photos).name}, {args.image_size} px, batch {args.batch}")
    result = {
        **measurement_stamp(),
        "photos": str(args.photos),
        "image_size": args.image_size,
        "seeds": args.seeds,
        "batch": args.batch,
        "start_per_class": args.start_per_class,
        **summary,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
