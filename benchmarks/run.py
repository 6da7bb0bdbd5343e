"""Speed and memory of the pipeline against its ceilings and against the tutorial's way.

    python benchmarks/run.py [--repeats 3] [--skip scale,tutorial-full] [--out benchmarks/results.json]

Everything runs on the same photos and machine; A and B are timed
interleaved, several times, and medians are reported. Figures:

  extract     images/s of the extract stage's code vs the raw forward pass of
              the same Keras model on the same images already in memory (ceiling)
  finetune    images/s of the finetune stage's training loop vs a bare
              model.fit on in-memory tensors, same model and trainable layers
  head        wall time of a head-only experiment (`dvc exp run train_head -S
              train_head.learning_rate=...`, prepare and extract from cache) vs
              the tutorial's way (base frozen inside model.fit over the images),
              whole processes, at 2 and 10 epochs
  backbones   extract images/s of each registered backbone at 224 px (random
              weights: speed does not depend on them), on 256 of the photos, and
              its 5-class classifier's size as TFLite float32 and int8 files
  litert      LiteRT (XNNPACK) vs TensorFlow at 160 px: extract's forward pass (and the
              extract stage's code with extract.runtime litert), and whole `predict`
              commands (start-up included) on the 1,000 validation photos for a
              .keras file with each --runtime (LiteRT cached, and its first run with
              the conversion) and for both exported .tflite files
  scale       every stage at params.yaml's defaults on 1x, 4x and 10x the photos
              (the extra ones mirrored, cropped and rotated): time per photo
              and peak RSS against the 1x run
  audit       the audit stage (whole process) on the photos' cached features at params.yaml's
              defaults, and on 10x the photos (bench_scale's set): seconds and peak RSS
  pipeline    whole `dvc repro` at 160 px, 10 + 10 epochs, empty cache, vs the
              tutorial's way as one uncached script
"""

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench_audit import AUDIT_FACTORS, bench_audit
from bench_backbones import bench_backbones
from bench_extract import bench_extract
from bench_finetune import bench_finetune
from bench_head import bench_head
from bench_litert import bench_litert
from bench_pipeline import bench_pipeline
from bench_scale import SCALE_FACTORS, bench_scale
from common import ROOT, STAGES, add_weights_argument, folder_repo, measurement_stamp

SECTIONS = ("extract", "finetune", "backbones", "head", "litert", "scale", "audit", "pipeline")


@dataclass(frozen=True)
class Sizes:
    """How big each section runs: the figures' settings, or --smoke's (every section once, on a
    few photos, to show it still runs: CI runs it; its figures mean nothing)."""

    image_size: int = 160
    head_epochs: tuple = (2, 10)
    pipeline_epochs: int = 10
    scale_factors: tuple = SCALE_FACTORS
    audit_factors: tuple = AUDIT_FACTORS
    backbone_photos_per_class: int = 128
    backbone_image_size: int = 224
    backbones: tuple = None  # registry names; None: every backbone
    photos_per_class: tuple = None  # (train, validation) photos of each class; None: all
    tutorial_full: bool = True  # the whole pipeline's section also times the tutorial's script


# Every section's code once, at the least cost (each stage process starts TensorFlow): the
# scale section on the photos alone, the audit's on 1x and 2x, one backbone, no tutorial run
# beside the whole pipeline (the head section runs the tutorial's script).
SMOKE = Sizes(
    image_size=48,
    head_epochs=(1,),
    pipeline_epochs=1,
    scale_factors=(1,),
    audit_factors=(1, 2),
    backbone_photos_per_class=40,
    backbone_image_size=48,
    backbones=("mobilenet_v2",),
    photos_per_class=(40, 8),
    tutorial_full=False,
)


def smoke_photos(photos, destination, per_class):
    """The first photos of each class of train/ and validation/: the layout the sections read."""
    for split, count in zip(("train", "validation"), per_class):
        for class_dir in sorted(path for path in (photos / split).iterdir() if path.is_dir()):
            (destination / split / class_dir.name).mkdir(parents=True)
            for path in sorted(class_dir.glob("*.jpg"))[:count]:
                shutil.copy(path, destination / split / class_dir.name / path.name)
    return destination


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "cats_and_dogs_filtered"))
    add_weights_argument(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: extract,finetune,backbones,head,litert,scale,audit,pipeline,tutorial-full",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every section once on a few photos, small images, one repeat: checks that the "
        "benchmark runs (CI); needs --out, its figures are not results",
    )
    args = parser.parse_args()
    if args.smoke and args.out == parser.get_default("out"):
        parser.error("--smoke needs --out elsewhere: its figures must not replace the measured ones")
    sizes = SMOKE if args.smoke else Sizes()
    repeats = 1 if args.smoke else args.repeats
    skip = set(filter(None, args.skip.split(",")))
    photos, weights = Path(args.photos).resolve(), Path(args.weights).resolve()
    results = {"machine": f"{os.cpu_count()} CPUs", "photos": str(photos), "repeats": repeats}
    size = sizes.image_size

    from transfer.data.sources.folder import prepare_folder

    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        if sizes.photos_per_class is not None:
            photos = smoke_photos(photos, work / "photos", sizes.photos_per_class)
        if not {"extract", "finetune", "litert"} <= skip:
            prepare_folder(photos, work / "prepared", size, [0.8, 0.1, 0.1], seed=42)
        if "extract" not in skip:
            results["extract"] = bench_extract(work / "prepared", str(weights), size, 64, repeats)
            print("extract", json.dumps(results["extract"]), flush=True)
        if "finetune" not in skip:
            results["finetune"] = bench_finetune(work / "prepared", str(weights), size, repeats)
            print("finetune", json.dumps(results["finetune"]), flush=True)
        if "backbones" not in skip:
            per_class, backbone_size = sizes.backbone_photos_per_class, sizes.backbone_image_size
            results["backbones"] = bench_backbones(
                work, photos, repeats, per_class, backbone_size, sizes.backbones
            )
        if "head" not in skip:
            repo = folder_repo(work / "head", photos, weights, **{"data.image_size": size})
            results["head"] = bench_head(repo, photos, weights, size, repeats, sizes.head_epochs)
            print("head", json.dumps(results["head"]), flush=True)
        if "litert" not in skip:
            results["litert"] = bench_litert(work, work / "prepared", photos, str(weights), repeats, size)
            print("litert", json.dumps(results["litert"]), flush=True)
        if "scale" not in skip:
            results["scale"] = bench_scale(work, photos, weights, sizes.scale_factors)
        if "audit" not in skip:
            results["audit"] = bench_audit(work, photos, weights, sizes.audit_factors)
        if "pipeline" not in skip:
            run_tutorial = sizes.tutorial_full and "tutorial-full" not in skip
            results["pipeline"] = bench_pipeline(
                work, photos, weights, run_tutorial, size, sizes.pipeline_epochs
            )
            print("pipeline", json.dumps(results["pipeline"]), flush=True)

    # Sections that were skipped keep their figures from an earlier run; "measured" says, for
    # each section, the commit, date and CPU of the run that measured it.
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    stamp = measurement_stamp()
    measured = {**previous.get("measured", {}), **dict.fromkeys(set(results) & set(SECTIONS), stamp)}
    results = {**previous, **results, "measured": measured}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results):
    rows = []
    for name in ("extract", "finetune"):
        if name in results:
            r = results[name]
            rows.append(
                (
                    f"{name} images/s",
                    f"{r['project']:.1f}",
                    f"{r['ceiling']:.1f} (ceiling)",
                    f"{r['ratio']:.2f}",
                    ">= 0.9",
                )
            )
    default_rate = results.get("backbones", {}).get("mobilenet_v2", {}).get("images_per_s")
    for name, r in results.get("backbones", {}).items():
        rows.append(
            (
                f"extract {name} 224 px images/s",
                f"{r['images_per_s']:.1f}",
                f"{default_rate:.1f} (mobilenet_v2)",
                f"{r['images_per_s'] / default_rate:.2f}",
                "",
            )
        )
        if "tflite_int8_mb" in r:
            rows.append(
                (
                    f"{name} classifier TFLite float32 / int8, MB",
                    f"{r['tflite_float32_mb']:.1f} / {r['tflite_int8_mb']:.1f}",
                    "",
                    "",
                    "",
                )
            )
    if "litert" in results:
        r = results["litert"]["extract"]
        rows.append(
            (
                f"extract {r['size']} px, LiteRT forward pass images/s",
                f"{r['litert']:.1f}",
                f"{r['tensorflow']:.1f} (TensorFlow's)",
                f"{r['ratio']:.2f}",
                ">= 1.8",
            )
        )
        rows.append(
            (
                "extract stage code, extract.runtime litert images/s",
                f"{r['litert_stage']:.1f}",
                f"{r['tensorflow']:.1f} (TensorFlow's forward pass)",
                f"{r['litert_stage'] / r['tensorflow']:.2f}",
                "",
            )
        )
        predict = results["litert"]["predict"]
        keras_rate = predict["keras_runtime_keras"]["photos_per_s"]
        for name, goal in (
            ("keras_runtime_keras", ""),
            ("keras_runtime_litert", ">= 3"),
            ("keras_runtime_litert_first", ""),
            ("tflite_float32", ""),
            ("tflite_int8", ""),
        ):
            rows.append(
                (
                    f"predict {predict['photos']} photos, {name} photos/s",
                    f"{predict[name]['photos_per_s']:.0f}",
                    f"{keras_rate:.0f} (.keras, --runtime keras)",
                    f"{predict[name]['vs_keras']:.2f}",
                    goal,
                )
            )
    for epochs, r in results.get("head", {}).items():
        goal = {"2_epochs": ">= 5x", "10_epochs": ">= 20x"}.get(epochs, "")
        rows.append(
            (
                f"head experiment, {epochs.replace('_', ' ')} (s)",
                f"{r['pipeline_s']:.1f}",
                f"{r['tutorial_s']:.1f} (tutorial)",
                f"{r['speedup']:.1f}x",
                goal,
            )
        )
    for factor in factors_run(results.get("scale", {}))[1:]:
        run = results["scale"][f"x{factor}"]
        for stage in (stage for stage in STAGES if stage in run["time_per_photo_vs_x1"]):
            rows.append(
                (
                    f"{stage} at {factor}x photos: time/photo vs 1x",
                    f"{run['time_per_photo_vs_x1'][stage]:.2f}",
                    f"{run[stage]['seconds']:.0f} s ({results['scale']['x1'][stage]['seconds']:.0f} s at 1x)",
                    "",
                    "<= 1.15",
                )
            )
            rows.append(
                (
                    f"{stage} at {factor}x photos: peak RSS (MB)",
                    f"{run[stage]['peak_rss_mb']:.0f}",
                    f"{results['scale']['x1'][stage]['peak_rss_mb']:.0f} (1x)",
                    f"{run['rss_growth_vs_x1'][stage]:+.0%}",
                    "<= +15%",
                )
            )
    if "audit" in results:
        one = results["audit"]["x1"]
        rows.append((f"audit stage, {one['photos']} photos (s)", f"{one['seconds']:.1f}", "", "", ""))
        for factor in factors_run(results["audit"])[1:]:
            run = results["audit"][f"x{factor}"]
            rows.append(
                (
                    f"audit stage, {run['photos']} photos (s)",
                    f"{run['seconds']:.1f}",
                    f"{one['seconds']:.1f} s at 1x",
                    f"{run['time_per_photo_vs_x1']:.2f} per photo",
                    "",
                )
            )
            rows.append(
                (
                    f"audit stage at {factor}x photos: peak RSS (MB)",
                    f"{run['peak_rss_mb']:.0f}",
                    f"{one['peak_rss_mb']:.0f} (1x)",
                    f"{run['peak_rss_mb'] / one['peak_rss_mb']:.2f}",
                    "",
                )
            )
    if "pipeline" in results:
        r = results["pipeline"]
        tutorial = f"{r['tutorial_s']:.0f} (tutorial)" if "tutorial_s" in r else "skipped"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        rows.append(("whole pipeline (s)", f"{r['pipeline_s']:.0f}", tutorial, ratio, "<= 0.5"))
    widths = [max(len(str(row[i])) for row in rows + [HEADER]) for i in range(5)]
    for row in [HEADER, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


HEADER = ("figure", "pipeline", "reference", "ratio", "goal")


def factors_run(section):
    """The photo multiples a scale or audit section ran ({"x1": ..., "x4": ...} -> [1, 4])."""
    return sorted(int(key[1:]) for key in section if key.startswith("x") and key[1:].isdigit())


if __name__ == "__main__":
    main()
