"""How much of a known corruption the audit finds, on copies of a real photo set.

    python benchmarks/audit_injected.py --photos ../shared/data/flower_photos [--image-size 100]

Three copies of the folder, each run through prepare, extract and audit (the stages' own
code, params.yaml's defaults but the folder source and the shared weights):
  clean       the photos as they are: what the audit finds in the real set
  labels      5% of the photos moved to another class's folder at random (seed 0): precision
              and recall of metrics/label_issues.csv cut at twice the number moved, and whole
  duplicates  50 photos copied into another class's folder under a new name (so into whatever
              split the name hashes to), each re-encoded at JPEG quality 70 and, by turns,
              left at its size, resized by 80% or cropped by 10%: the share whose copy lands in
              its original's group in metrics/duplicates.csv, and whether each copy that crossed
              splits is counted in metrics/audit.json's leaks

With --review, the loop a person closes with `transfer review`, at the README's 160 px command
(data.image_size 160, 10 + 10 epochs; up to evaluate): the clean set and the labels copy each
run through the pipeline; then a scripted reviewer who knows the truth walks the labels copy's
"Likely label errors" queue through the review server's JSON endpoints, in its order, one
decision per photo as a careful person would (a moved photo: moved back to its class; any
other: kept); then `dvc repro` again. Reported: moved photos fixed per 100 photos reviewed,
and test accuracy before and after the review and on the clean set, both as each run scores
itself (metrics/eval.json, on its own labels) and against the true labels.
"""

import argparse
import csv
import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import add_weights_argument, folder_repo  # noqa: E402

from tests.conftest import copy_project, set_params  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
LABEL_NOISE = 0.05
DUPLICATES = 50


def photos_of(root):
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def class_of(relative):
    return relative.split("/")[-2]


def copy_tree(source, destination):
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*.txt", "*.sha256"))
    return destination


def move_labels(root, rng):
    """Move LABEL_NOISE of the photos to another class folder; returns {new relative path: the
    class it came from (its true class)}."""
    photos = photos_of(root)
    classes = sorted({class_of(path) for path in photos})
    moved = {}
    for path in rng.sample(photos, round(LABEL_NOISE * len(photos))):
        wrong = rng.choice([name for name in classes if name != class_of(path)])
        parts = path.split("/")
        target = "/".join([*parts[:-2], wrong, parts[-1]])
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / path).rename(root / target)
        moved[target] = class_of(path)
    return moved


def altered_copy(source, destination, turn, rng):
    with Image.open(source) as image:
        image = image.convert("RGB")
        if turn == 1:
            image = image.resize((round(image.width * 0.8), round(image.height * 0.8)), Image.BILINEAR)
        elif turn == 2:
            cut_x, cut_y = round(image.width * 0.1), round(image.height * 0.1)
            left, top = rng.randint(0, cut_x), rng.randint(0, cut_y)
            image = image.crop((left, top, image.width - (cut_x - left), image.height - (cut_y - top)))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=70)
    destination.write_bytes(buffer.getvalue())


def add_duplicates(root, rng):
    """DUPLICATES altered copies in other class folders; returns [(original, copy)] relative paths."""
    photos = photos_of(root)
    classes = sorted({class_of(path) for path in photos})
    pairs = []
    for turn, path in enumerate(rng.sample(photos, DUPLICATES)):
        other = rng.choice([name for name in classes if name != class_of(path)])
        parts = path.split("/")
        copy = "/".join([*parts[:-2], other, f"copy{turn}-{Path(parts[-1]).stem}.jpg"])
        altered_copy(root / path, root / copy, turn % 3, rng)
        pairs.append((path, copy))
    return pairs


def audit_run(work, photos, weights, image_size):
    repo = copy_project(work / "repo")
    set_params(
        repo,
        data__source="folder",
        data__path=str(photos),
        model__weights=str(weights),
        data__image_size=image_size,
    )
    for stage in ("runtime", "prepare", "extract", "audit"):
        subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=repo, check=True, capture_output=True)
    metrics = repo / "metrics"
    rows = {
        name: list(csv.DictReader(open(metrics / f"{name}.csv"))) for name in ("duplicates", "label_issues")
    }
    return json.loads((metrics / "audit.json").read_text()), rows


def label_scores(issues, moved):
    moved = set(moved)
    found = [row["path"] in moved for row in issues]

    def at(cut):
        hits = sum(found[:cut])
        return {
            "cut": min(cut, len(found)),
            "precision": round(hits / max(min(cut, len(found)), 1), 3),
            "recall": round(hits / len(moved), 3),
        }

    return {"moved": len(moved), "at_twice_moved": at(2 * len(moved)), "whole_list": at(len(found))}


def duplicate_scores(summary, duplicates, pairs):
    group_of = {row["path"]: row["group"] for row in duplicates}
    split_of = {row["path"]: row["split"] for row in duplicates}
    found = [
        original for original, copy in pairs if copy in group_of and group_of[copy] == group_of.get(original)
    ]
    crossing = {
        group_of[copy]
        for original, copy in pairs
        if copy in group_of and split_of[copy] != split_of.get(original)
    }
    return {
        "injected": len(pairs),
        "found": len(found),
        "groups_crossing_splits_with_a_copy": len(crossing),
        "leaks_counted": sum(summary["leaks"].values()),
    }


PX160 = {"data.image_size": 160, "train_head.epochs": 10, "finetune.epochs": 10}


def pipeline_run(repo):
    """`dvc repro evaluate`; (eval.json's test accuracy, {test photo: predicted class})."""
    subprocess.run(["dvc", "repro", "evaluate"], cwd=repo, check=True, capture_output=True)
    accuracy = json.loads((repo / "metrics" / "eval.json").read_text())["finetuned"]["accuracy"]
    rows = csv.DictReader(open(repo / "metrics" / "predictions.csv"))
    return accuracy, {row["id"]: row["predicted_label"] for row in rows}


def true_accuracy(predicted, moved):
    """Test accuracy against the true classes: a moved photo's is the folder it came from."""
    return round(
        sum(label == moved.get(path, class_of(path)) for path, label in predicted.items()) / len(predicted), 4
    )


def scripted_review(repo, moved):
    """Walk the label queue through the JSON endpoints; returns [(reviewed, fixed)] after each card."""
    from tests.review_client import Client, review_server

    walked, fixed = [], 0
    with review_server(repo) as (address, _):
        client = Client(address)
        cards = client.json("GET", "/api/queues/labels")["cards"]
        for reviewed, card in enumerate(cards, start=1):
            path = card["photos"][0]["path"]
            action = moved.get(path, "keep")
            client.json("POST", "/api/decisions", {"decisions": [{"path": path, "action": action}]})
            fixed += path in moved
            walked.append((reviewed, fixed))
    return walked


def review_loop(work, source, weights, seed):
    def project(name, photos):
        return folder_repo(work / name, photos, weights, **PX160)

    clean_accuracy, clean_predicted = pipeline_run(project("clean-160", source))
    noisy = copy_tree(source, work / "review-photos")
    moved = move_labels(noisy, random.Random(seed))
    repo = project("review-160", noisy)
    before, before_predicted = pipeline_run(repo)
    walked = scripted_review(repo, moved)
    after, after_predicted = pipeline_run(repo)
    reviewed, fixed = walked[-1] if walked else (0, 0)
    first_hundred = walked[min(100, len(walked)) - 1] if walked else (0, 0)
    return {
        "moved": len(moved),
        "reviewed": reviewed,
        "fixed": fixed,
        "fixed_per_100_reviewed": round(100 * fixed / max(reviewed, 1), 1),
        "fixed_in_the_first_100": first_hundred[1],
        "test_accuracy": {"clean": clean_accuracy, "before_review": before, "after_review": after},
        "test_accuracy_against_true_labels": {
            "clean": true_accuracy(clean_predicted, {}),
            "before_review": true_accuracy(before_predicted, moved),
            "after_review": true_accuracy(after_predicted, moved),
        },
        "exclusions": (repo / "data" / "exclusions.csv").read_text().count("\n") - 1,
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", required=True)
    add_weights_argument(parser)
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="work in this folder and keep it (the three repos and photo copies)")
    parser.add_argument("--review", action="store_true", help="the review loop at 160 px only (see above)")
    args = parser.parse_args()
    source, weights = Path(args.photos).resolve(), Path(args.weights).resolve()
    results = {"photos": str(source), "image_size": args.image_size}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.keep or temporary)
        if args.review:
            results["image_size"] = PX160["data.image_size"]
            results["review"] = review_loop(work, source, weights, args.seed)
            print(json.dumps(results, indent=2))
            return
        summary, rows = audit_run(work / "clean", source, weights, args.image_size)
        results["clean"] = {
            key: summary[key]
            for key in (
                "exact_duplicate_groups",
                "near_duplicate_groups",
                "duplicate_photos",
                "leaks",
                "label_issues",
                "outliers",
                "out_of_sample_accuracy",
            )
        }
        results["clean"]["top_label_issues"] = [
            f"{row['path']} -> {row['suggested']} ({row['suggested_probability']})"
            for row in rows["label_issues"][:10]
        ]
        noisy = copy_tree(source, work / "labels-photos")
        moved = move_labels(noisy, random.Random(args.seed))
        summary, rows = audit_run(work / "labels", noisy, weights, args.image_size)
        results["labels"] = label_scores(rows["label_issues"], moved)
        copied = copy_tree(source, work / "duplicates-photos")
        pairs = add_duplicates(copied, random.Random(args.seed))
        summary, rows = audit_run(work / "duplicates", copied, weights, args.image_size)
        results["duplicates"] = duplicate_scores(summary, rows["duplicates"], pairs)
        results["duplicates"]["groups_in_total"] = (
            summary["exact_duplicate_groups"] + summary["near_duplicate_groups"]
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
