"""The audit stage on 1x and 10x the photos' cached features: seconds, per photo, peak RSS.

The 10x set is bench_scale's (each photo with its mirror, crops and small rotations), so
every photo has near-copies among its neighbours: the pixel check has the most candidate
pairs it can get (audit.neighbours per photo), the slowest case for its size.
"""

import json
import sys

from bench_scale import make_larger_set
from common import folder_repo, peak_rss_mb, run_process

from transfer.core.records import read_record

AUDIT_FACTORS = (1, 10)


def bench_audit(work, photos, weights, factors=AUDIT_FACTORS):
    results = {}
    for factor in factors:
        folder = photos if factor == 1 else make_larger_set(photos, work / f"audit-photos{factor}x", factor)
        repo = folder_repo(work / f"audit-{factor}x", folder, weights)
        for stage in ("runtime", "prepare", "extract"):  # what the audit reads, not timed
            run_process([sys.executable, "-m", f"stages.{stage}"], repo)
        seconds, peak = peak_rss_mb([sys.executable, "-m", "stages.audit"], repo)
        summary = read_record("audit", repo)
        results[f"x{factor}"] = {
            "photos": sum(summary["photos"].values()),
            "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak, 1),
            "duplicate_photos": summary["duplicate_photos"],
        }
        print("audit", factor, json.dumps(results[f"x{factor}"]), flush=True)
    one = results["x1"]
    for factor in factors[1:]:
        run = results[f"x{factor}"]
        run["time_per_photo_vs_x1"] = round(
            run["seconds"] / run["photos"] / (one["seconds"] / one["photos"]), 3
        )
    return results
