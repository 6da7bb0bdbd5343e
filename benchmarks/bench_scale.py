"""Every stage on 1x, 4x and 10x the photos: time per photo and peak RSS."""

import json
import sys
from pathlib import Path

from common import STAGE_MODULES, STAGES, folder_repo, peak_rss_mb, run_process
from PIL import Image, ImageOps


def _crop(image, left=True):
    dx, dy = image.width // 10, image.height // 10
    return image.crop(
        (dx, dy, image.width, image.height) if left else (0, 0, image.width - dx, image.height - dy)
    )


# Distinct photos made from one: the first four are those the 4x set has always used.
VARIANTS = [
    lambda image: image,
    ImageOps.mirror,
    _crop,
    lambda image: image.rotate(8, expand=False),
    lambda image: image.rotate(-8, expand=False),
    lambda image: _crop(ImageOps.mirror(image)),
    lambda image: ImageOps.mirror(image).rotate(8, expand=False),
    lambda image: ImageOps.mirror(image).rotate(-8, expand=False),
    lambda image: _crop(image, left=False),
    lambda image: _crop(ImageOps.mirror(image), left=False),
]


def make_larger_set(photos, destination, factor=4):
    """factor x the photos (up to 10): originals, mirrors, crops and small rotations, as JPEGs."""
    for path in sorted(Path(photos).rglob("*.jpg")):
        relative = path.relative_to(photos)
        with Image.open(path) as image:
            image = image.convert("RGB")
            for index, variant in enumerate(VARIANTS[:factor]):
                target = destination / relative.parent / f"{relative.stem}-v{index}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                variant(image).save(target, quality=92)
    return destination


SCALE_FACTORS = (1, 4, 10)


def bench_scale(work, photos, weights, factors=SCALE_FACTORS):
    """Every stage at the benchmark's settings (100 px, 2 + 2 epochs) on 1x, 4x and 10x the photos:
    seconds and peak RSS per stage, and against the 1x run, time per photo and RSS growth."""
    results = {}
    for factor in factors:
        folder = photos if factor == 1 else make_larger_set(photos, work / f"photos{factor}x", factor)
        repo = folder_repo(work / f"scale-{factor}x", folder, weights)
        results[f"x{factor}"] = {"photos": sum(1 for _ in Path(folder).rglob("*.jpg"))}
        for stage in ("runtime", "pool"):  # what the stages check on start, and read
            run_process([sys.executable, "-m", f"stages.{stage}"], repo)
        for stage in STAGES:
            seconds, peak = peak_rss_mb([sys.executable, "-m", STAGE_MODULES[stage]], repo)
            results[f"x{factor}"][stage] = {"peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1)}
        print("scale", factor, json.dumps(results[f"x{factor}"]), flush=True)
    one = results["x1"]
    for factor in factors[1:]:
        run = results[f"x{factor}"]
        scale = run["photos"] / one["photos"]
        run["time_per_photo_vs_x1"] = {
            stage: run[stage]["seconds"] / scale / one[stage]["seconds"] for stage in STAGES
        }
        run["rss_growth_vs_x1"] = {
            stage: run[stage]["peak_rss_mb"] / one[stage]["peak_rss_mb"] - 1 for stage in STAGES
        }
    return results
