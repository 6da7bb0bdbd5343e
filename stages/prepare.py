"""Stage 1: raw images -> resized train/validation/test shards in data/prepared."""

import sys

from transfer.config.params import load_params
from transfer.core.artifacts import PREPARED, SAMPLES_PLOT, SKIPPED
from transfer.core.errors import run_stage
from transfer.core.io import atomic_path, write_json
from transfer.core.records import write_record
from transfer.data.exclusions import EXCLUSIONS, Exclusions
from transfer.data.shards import SPLITS, read_meta, read_shards
from transfer.data.sources import get_source
from transfer.reporting.figures import plot_samples


def main():
    data = load_params()["data"]
    source = get_source(data["source"])
    exclusions = Exclusions.read(EXCLUSIONS, source.photo_folder(data))
    with atomic_path(PREPARED) as prepared:
        counts, skipped = source.prepare(data, prepared, exclusions)
        exclusions.check_all_applied()
        class_names = read_meta(prepared)["class_names"]
        images, labels, _ = next(read_shards(prepared, "train"))
        with atomic_path(SAMPLES_PLOT) as samples:
            plot_samples(images, labels, class_names, samples)

    summary = {split: {**counts[split], "total": sum(counts[split].values())} for split in SPLITS}
    summary["skipped"] = len(skipped)
    summary["excluded"] = {"dropped": exclusions.applied["drop"], "relabelled": exclusions.applied["relabel"]}
    write_record("prepare", summary)
    write_json(SKIPPED, [{"path": path, "reason": reason} for path, reason in skipped])
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    totals = ", ".join(f"{split} {summary[split]['total']}" for split in SPLITS)
    print(f"prepared {totals}; skipped {len(skipped)}")


if __name__ == "__main__":
    run_stage(main)
