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
              weights: speed does not depend on them), on 256 of the photos
  litert      LiteRT (XNNPACK) vs TensorFlow at 160 px: extract's forward pass (and the
              extract stage's code with extract.runtime litert), and whole `predict`
              commands (start-up included) on the 1,000 validation photos for a
              .keras file with each --runtime (LiteRT cached, and its first run with
              the conversion) and for both exported .tflite files
  scale       every stage at params.yaml's defaults on 1x, 4x and 10x the photos
              (the extra ones mirrored, cropped and rotated): time per photo
              and peak RSS against the 1x run
  pipeline    whole `dvc repro` at 160 px, 10 + 10 epochs, empty cache, vs the
              tutorial's way as one uncached script
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import transfer  # noqa: E402, F401  (TensorFlow environment defaults)

STAGES = ["prepare", "extract", "train_head", "finetune", "evaluate", "export"]


def median_rate(count, seconds):
    return count / statistics.median(seconds)


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run_process(command, cwd):
    """Run a command to completion; returns (wall seconds, combined output)."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}")
    return seconds, result.stdout


# Runs the command from a small Python parent and prints the child's peak RSS.
# Measuring from this (large) process would count the memory of the forked
# copy of this process before exec in every child's ru_maxrss.
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def peak_rss_mb(command, cwd):
    """Wall seconds and peak RSS (MB) of one process."""
    seconds, output = run_process([sys.executable, "-c", PEAK_RSS, *command], cwd)
    return seconds, int(output.strip().splitlines()[-1]) / 1024


def make_repo(directory, params):
    """A git + DVC copy of the project (tests/conftest.py's, as the end-to-end tests make
    it), with params ("section.key": value) changed and committed."""
    from tests.conftest import commit, copy_project, set_params

    repo = copy_project(directory)
    set_params(repo, **{dotted.replace(".", "__"): value for dotted, value in params.items()})
    commit(repo, "benchmark")
    return repo


def bench_extract(prepared, weights, size, batch_size, repeats):
    from transfer.features import extract_all
    from transfer.model import build_base, build_feature_extractor
    from transfer.shards import SPLITS, image_count, read_shards

    extractor = build_feature_extractor(build_base(size, weights))
    images = np.concatenate([shard[0] for split in SPLITS for shard in read_shards(prepared, split)])
    count = image_count(prepared, SPLITS)

    def ceiling():
        for start in range(0, len(images), batch_size):
            extractor.predict_on_batch(images[start : start + batch_size])

    def project():
        with tempfile.TemporaryDirectory() as out:
            extract_all(extractor, prepared, out, batch_size)

    ceiling()  # warm-up: tracing and oneDNN kernel selection
    project()
    project_times, ceiling_times = [], []
    for _ in range(repeats):
        project_times.append(timed(project))
        ceiling_times.append(timed(ceiling))
    rates = {"project": median_rate(count, project_times), "ceiling": median_rate(count, ceiling_times)}
    return {"images": count, "batch_size": batch_size, **rates, "ratio": rates["project"] / rates["ceiling"]}


def bench_backbones(work, photos, repeats, per_class=128, size=224, batch_size=64):
    """The extract stage's code with every backbone, on the same 224 px images."""
    from transfer.backbones import BACKBONES
    from transfer.features import extract_all
    from transfer.folder_source import prepare_folder
    from transfer.model import build_base, build_feature_extractor

    subset = work / "backbone_photos"
    for class_dir in sorted(path for path in (photos / "train").iterdir() if path.is_dir()):
        (subset / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(path, subset / class_dir.name / path.name)
    prepared = work / "backbone_prepared"
    prepare_folder(subset, prepared, size, [0.8, 0.1, 0.1], seed=42)
    results = {}
    for name in BACKBONES:
        extractor = build_feature_extractor(build_base(size, "none", name))

        def extract(extractor=extractor):
            with tempfile.TemporaryDirectory() as out:
                return sum(extract_all(extractor, prepared, out, batch_size).values())

        count = extract()  # warm-up: tracing and oneDNN kernel selection
        seconds = [timed(extract) for _ in range(repeats)]
        results[name] = {"images": count, "image_size": size, "images_per_s": median_rate(count, seconds)}
        print("backbone", name, json.dumps(results[name]), flush=True)
    return results


def bench_finetune(prepared, weights, size, repeats, fine_tune_at=100, batch_size=32):
    import keras

    from transfer.finetuning import image_dataset
    from transfer.model import build_base, build_classifier, build_head, unfreeze_top
    from transfer.shards import read_meta, read_shards
    from transfer.task import Task
    from transfer.training import compile_model

    task = Task(read_meta(prepared)["class_names"])
    base = build_base(size, weights)
    unfreeze_top(base, fine_tune_at)
    model = build_classifier(base, build_head(task.logit_width))
    compile_model(model, task, 1e-5)
    shards = list(read_shards(prepared, "train"))
    images = np.concatenate([shard[0] for shard in shards])
    labels = np.concatenate([shard[1] for shard in shards]).astype("float32")
    # Whole batches only, so both loops do the same steps.
    count = len(images) // batch_size * batch_size
    images, labels = images[:count], labels[:count]

    def project():
        dataset = image_dataset(prepared, "train", batch_size, shuffle_buffer=1000, seed=0).take(
            count // batch_size
        )
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)

    def bare():
        model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)

    project()
    bare()
    project_times, bare_times = [], []
    for _ in range(repeats):
        project_times.append(timed(project))
        bare_times.append(timed(bare))
    keras.backend.clear_session()
    rates = {"project": median_rate(count, project_times), "ceiling": median_rate(count, bare_times)}
    return {"images": count, "batch_size": batch_size, **rates, "ratio": rates["project"] / rates["ceiling"]}


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
    """Every stage at the seed's defaults (100 px, 2 + 2 epochs) on 1x, 4x and 10x the photos:
    seconds and peak RSS per stage, and against the 1x run, time per photo and RSS growth."""
    results = {}
    for factor in factors:
        folder = photos if factor == 1 else make_larger_set(photos, work / f"photos{factor}x", factor)
        repo = make_repo(
            work / f"scale-{factor}x",
            {"data.source": "folder", "data.path": str(folder), "model.weights": str(weights)},
        )
        results[f"x{factor}"] = {"photos": sum(1 for _ in Path(folder).rglob("*.jpg"))}
        run_process([sys.executable, "-m", "stages.runtime"], repo)  # what the stages check on start
        for stage in STAGES:
            seconds, peak = peak_rss_mb([sys.executable, "-m", f"stages.{stage}"], repo)
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


def bench_litert(work, prepared, photos, weights, repeats, size=160, batch_size=64):
    """LiteRT (XNNPACK) against TensorFlow: extract's forward pass, and whole predict commands."""
    from transfer.export import export_tflite
    from transfer.features import extract_all
    from transfer.inference import outputs_of
    from transfer.litert import plain_saved_model
    from transfer.model import build_base, build_classifier, build_feature_extractor, build_head
    from transfer.shards import SPLITS, image_count, read_shards
    from transfer.task import Task

    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # a cold cache: the conversion is timed once
    extractor = build_feature_extractor(build_base(size, weights))
    images = np.concatenate([shard[0] for split in SPLITS for shard in read_shards(prepared, split)])
    images = images[: len(images) // batch_size * batch_size]  # full batches, as extract runs them
    conversion_s = timed(lambda: outputs_of(extractor, "litert"))
    runs = {"tensorflow": extractor.predict_on_batch, "litert": outputs_of(extractor, "litert")}

    def forward(name):
        for start in range(0, len(images), batch_size):
            runs[name](images[start : start + batch_size])

    def stage():
        with tempfile.TemporaryDirectory() as out:
            extract_all(extractor, prepared, out, batch_size, runs["litert"])

    for name in runs:
        forward(name)  # warm-up: tracing, kernel selection, XNNPACK packing
    times = {"tensorflow": [], "litert": [], "litert_stage": []}
    for _ in range(repeats):
        for name in runs:
            times[name].append(timed(lambda name=name: forward(name)))
        times["litert_stage"].append(timed(stage))
    count = image_count(prepared, SPLITS)
    extract = {
        "images": len(images),
        "size": size,
        "tensorflow": median_rate(len(images), times["tensorflow"]),
        "litert": median_rate(len(images), times["litert"]),
        "litert_stage": median_rate(count, times["litert_stage"]),
        "conversion_s": conversion_s,
    }
    extract["ratio"] = extract["litert"] / extract["tensorflow"]

    # predict: whole commands (start-up included) on the 1,000 validation photos, a 160 px
    # classifier (real base, random head: speed does not depend on the head's weights).
    folder = photos / "validation"
    files = len(list(folder.rglob("*.jpg")))
    model_dir = work / "predict"
    model_dir.mkdir()
    model = build_classifier(build_base(size, weights), build_head())
    model.save(model_dir / "model.keras")
    task = Task(["cats", "dogs"])
    (model_dir / "classes.json").write_text(json.dumps({"class_names": task.class_names}))
    with plain_saved_model(model) as saved_model:
        export_tflite(saved_model, task, model_dir / "model_float32.tflite")
        export_tflite(saved_model, task, model_dir / "model_int8.tflite", images[:200])
    predict = [sys.executable, "-m", "transfer", "predict"]
    commands = {
        "keras_runtime_keras": [*predict, "--runtime", "keras", model_dir / "model.keras", folder],
        "keras_runtime_litert": [*predict, "--runtime", "litert", model_dir / "model.keras", folder],
        "tflite_float32": [*predict, model_dir / "model_float32.tflite", folder],
        "tflite_int8": [*predict, model_dir / "model_int8.tflite", folder],
    }
    first_litert_s, _ = run_process(commands["keras_runtime_litert"], ROOT)  # converts and caches
    seconds = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            seconds[name].append(run_process(command, ROOT)[0])
    result = {name: {"seconds": statistics.median(times)} for name, times in seconds.items()}
    result["keras_runtime_litert_first"] = {"seconds": first_litert_s}
    for run in result.values():
        run["photos_per_s"] = files / run["seconds"]
        run["vs_keras"] = result["keras_runtime_keras"]["seconds"] / run["seconds"]
    return {"extract": extract, "predict": {"photos": files, **result}}


def bench_pipeline(work, photos, weights, run_tutorial):
    params = {
        "data.source": "folder",
        "data.path": str(photos),
        "model.weights": str(weights),
        "data.image_size": 160,
        "train_head.epochs": 10,
        "finetune.epochs": 10,
    }
    repo = make_repo(work / "pipeline", params)
    seconds, output = run_process(["dvc", "repro"], repo)
    stage_lines = [line for line in output.splitlines() if line.startswith("Running stage")]
    result = {"pipeline_s": seconds, "stages": len(stage_lines)}
    result["eval"] = json.loads((repo / "metrics" / "eval.json").read_text())
    result["eval"] = {model: result["eval"][model]["accuracy"] for model in ("head", "finetuned")}
    if run_tutorial:
        command = [sys.executable, str(ROOT / "benchmarks" / "tutorial.py"), "--photos", str(photos)]
        command += [
            "--weights",
            str(weights),
            "--image-size",
            "160",
            "--head-epochs",
            "10",
            "--finetune-epochs",
            "10",
        ]
        result["tutorial_s"], _ = run_process(command, repo)
        result["ratio"] = result["pipeline_s"] / result["tutorial_s"]
    return result


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "cats_and_dogs_filtered"))
    parser.add_argument(
        "--weights",
        default=str(ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.h5"),
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: extract,finetune,backbones,head,litert,scale,pipeline,tutorial-full",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    photos, weights = Path(args.photos).resolve(), Path(args.weights).resolve()
    results = {"machine": f"{os.cpu_count()} CPUs", "photos": str(photos), "repeats": args.repeats}

    from transfer.folder_source import prepare_folder

    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        if not {"extract", "finetune", "litert"} <= skip:
            prepare_folder(photos, work / "prepared", 160, [0.8, 0.1, 0.1], seed=42)
        if "extract" not in skip:
            results["extract"] = bench_extract(work / "prepared", str(weights), 160, 64, args.repeats)
            print("extract", json.dumps(results["extract"]), flush=True)
        if "finetune" not in skip:
            results["finetune"] = bench_finetune(work / "prepared", str(weights), 160, args.repeats)
            print("finetune", json.dumps(results["finetune"]), flush=True)
        if "backbones" not in skip:
            results["backbones"] = bench_backbones(work, photos, args.repeats)
        if "head" not in skip:
            params = {
                "data.source": "folder",
                "data.path": str(photos),
                "model.weights": str(weights),
                "data.image_size": 160,
            }
            results["head"] = bench_head(make_repo(work / "head", params), photos, weights, 160, args.repeats)
            print("head", json.dumps(results["head"]), flush=True)
        if "litert" not in skip:
            results["litert"] = bench_litert(work, work / "prepared", photos, str(weights), args.repeats)
            print("litert", json.dumps(results["litert"]), flush=True)
        if "scale" not in skip:
            results["scale"] = bench_scale(work, photos, weights)
        if "pipeline" not in skip:
            results["pipeline"] = bench_pipeline(work, photos, weights, "tutorial-full" not in skip)
            print("pipeline", json.dumps(results["pipeline"]), flush=True)

    # Sections that were skipped keep their figures from an earlier run; "measured" says, for
    # each section, the commit, date and CPU of the run that measured it.
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    stamp = measurement_stamp()
    measured = {**previous.get("measured", {}), **dict.fromkeys(results, stamp)}
    results = {**previous, **results, "measured": measured}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def measurement_stamp():
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    )
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        if Path("/proc/cpuinfo").is_file()
        else "unknown"
    )
    return {
        "commit": commit.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else ""),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
    }


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
    for epochs, goal in (("2_epochs", ">= 5x"), ("10_epochs", ">= 20x")):
        if epochs in results.get("head", {}):
            r = results["head"][epochs]
            rows.append(
                (
                    f"head experiment, {epochs.replace('_', ' ')} (s)",
                    f"{r['pipeline_s']:.1f}",
                    f"{r['tutorial_s']:.1f} (tutorial)",
                    f"{r['speedup']:.1f}x",
                    goal,
                )
            )
    for factor in SCALE_FACTORS[1:]:
        run = results.get("scale", {}).get(f"x{factor}")
        if not run:
            continue
        for stage in STAGES:
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
    if "pipeline" in results:
        r = results["pipeline"]
        tutorial = f"{r['tutorial_s']:.0f} (tutorial)" if "tutorial_s" in r else "skipped"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        rows.append(("whole pipeline 160 px 10+10 (s)", f"{r['pipeline_s']:.0f}", tutorial, ratio, "<= 0.5"))
    widths = [max(len(str(row[i])) for row in rows + [HEADER]) for i in range(5)]
    for row in [HEADER, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


HEADER = ("figure", "pipeline", "reference", "ratio", "goal")

if __name__ == "__main__":
    main()
