"""Stage 1: raw images -> resized train/validation/test shards in data/prepared."""

import sys

from transfer.artifacts import PREPARED
from transfer.errors import run_stage
from transfer.exclusions import EXCLUSIONS, Exclusions
from transfer.figures import plot_samples
from transfer.folder_source import prepare_folder
from transfer.io import atomic_path, write_json
from transfer.params import load_params
from transfer.records import write_record
from transfer.shards import SPLITS, read_meta, read_shards
from transfer.tfds_source import prepare_tfds


def main():
    data = load_params()["data"]
    exclusions = Exclusions.read(EXCLUSIONS, data["path"] if data["source"] == "folder" else None)
    with atomic_path(PREPARED) as prepared:
        if data["source"] == "folder":
            counts, skipped = prepare_folder(
                data["path"], prepared, data["image_size"], data["split"], data["seed"], exclusions=exclusions
            )
        else:
            tfds_dir = None if data["tfds_dir"] == "default" else data["tfds_dir"]
            counts, skipped = prepare_tfds(
                prepared, data["image_size"], data["split"], data["tfds_name"], tfds_dir, exclusions
            )
        exclusions.check_all_applied()
        class_names = read_meta(prepared)["class_names"]
        images, labels, _ = next(read_shards(prepared, "train"))
        with atomic_path("plots/samples.png") as samples:
            plot_samples(images, labels, class_names, samples)

    summary = {split: {**counts[split], "total": sum(counts[split].values())} for split in SPLITS}
    summary["skipped"] = len(skipped)
    summary["excluded"] = {"dropped": exclusions.applied["drop"], "relabelled": exclusions.applied["relabel"]}
    write_record("prepare", summary)
    write_json("metrics/skipped.json", [{"path": path, "reason": reason} for path, reason in skipped])
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    totals = ", ".join(f"{split} {summary[split]['total']}" for split in SPLITS)
    print(f"prepared {totals}; skipped {len(skipped)}")


if __name__ == "__main__":
    run_stage(main)
