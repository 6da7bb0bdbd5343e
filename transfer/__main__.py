"""Command line: `transfer predict MODEL PATH [PATH ...]`, `transfer review`, `transfer worker
STAGE [STAGE ...]`, `transfer plots-template` (or python -m)."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from transfer.config.schema import RUNTIMES
from transfer.core.errors import PipelineError
from transfer.core.task import THRESHOLD
from transfer.inference.runners import AUTO
from transfer.reporting.plots_page import TEMPLATE_FILE

# --top when not given: the three best classes for K > 2; none for two classes.
DEFAULT_TOP = 3


def predict_command(args):
    from transfer.core.progress import Progress
    from transfer.data.images import IMAGE_SUFFIXES, find_images
    from transfer.deploy.predict import predict_files
    from transfer.inference.bundle import open_bundle
    from transfer.inference.runners import bundle_runner

    if args.batch_size < 1:
        raise PipelineError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise PipelineError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.top is not None and args.top < 0:
        raise PipelineError(f"--top must be an integer >= 0, got {args.top}")
    bundle = open_bundle(args.model)
    task = bundle.task
    if not task.binary and args.threshold is not None:
        raise PipelineError(
            f"--threshold is for two-class models; this one has {task.num_classes} classes "
            "and predicts the most probable"
        )
    files = find_images(args.paths)
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise PipelineError(f"no images in {', '.join(args.paths)}: a folder search picks up {suffixes}")
    runner = bundle_runner(bundle, args.runtime)
    top = args.top if args.top is not None else (0 if task.binary else DEFAULT_TOP)
    threshold = THRESHOLD if args.threshold is None else args.threshold
    failed = 0
    with Progress("predict", len(files)) as progress:
        for result in predict_files(
            runner,
            bundle,
            files,
            args.batch_size,
            threshold,
            progress,
            tta=args.tta,
            top=top,
            reject=args.reject,
        ):
            failed += "error" in result
            print(json.dumps(result), flush=False)
    sys.stdout.flush()
    if failed == len(files):
        print(f"error: none of the {len(files)} files could be read as an image", file=sys.stderr)
    return 1 if failed else 0


def plots_template_command():
    from transfer.reporting.plots_page import write_template

    if not Path(".dvc").is_dir():
        raise PipelineError("no .dvc folder here: run this at the top of the project")
    print(write_template())
    return 0


def review_command(args):
    import asyncio

    from transfer.review.server import serve

    if not 0 <= args.port <= 65535:
        raise PipelineError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        asyncio.run(serve(args.port, open_browser=not args.no_browser))
    except KeyboardInterrupt:
        pass
    return 0


# The stages that train under runtime.strategy multi_worker; the others run on the chief alone.
TRAINING_STAGES = ("train_head", "finetune")


def worker_command(args):
    """Run training stages as a non-chief worker of TF_CONFIG's cluster: each trains with
    the chief and writes nothing; the chief runs the same stages with `dvc repro`."""
    from transfer.config.params import load_params
    from transfer.distribute.resolve import cluster_workers
    from transfer.distribute.runtime import is_chief_task

    if not Path("stages").is_dir() or not Path("params.yaml").is_file():
        raise PipelineError("no stages folder or params.yaml here: run this at the top of the project")
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "null")
    except json.JSONDecodeError as error:
        raise PipelineError(f"TF_CONFIG is not valid JSON: {error}") from None
    if not isinstance(tf_config, dict) or cluster_workers(tf_config) < 2:
        raise PipelineError("TF_CONFIG names no cluster of two or more workers (docs/scale.md)")
    if is_chief_task(tf_config):
        raise PipelineError("TF_CONFIG's task is the chief: run `dvc repro` (or `dvc exp run`) there")
    strategy = load_params()["runtime"]["strategy"]
    if strategy != "multi_worker":
        raise PipelineError(f"params.yaml: runtime.strategy is {strategy!r}: set it to multi_worker")
    for stage in args.stages:
        print(f"worker: running {stage}", file=sys.stderr, flush=True)
        code = subprocess.run([sys.executable, "-m", f"stages.{stage}"]).returncode
        if code:
            return code
    return 0


def add_predict_command(commands):
    predict = commands.add_parser(
        "predict",
        help="label image files with a trained model; one JSON object per image on stdout",
        description="Label images with a trained model. Prints one JSON object per image, in input "
        'order: {"path", "label", "score"[, "top"], "known", "novelty"} or {"path", "error"}; "score" '
        'is calibrated and "known" is false for a photo of none of the classes (its novelty above the '
        "threshold saved with the model). Exit status: 0 all labelled, 1 some images unreadable, "
        "2 bad arguments or missing model/path.",
    )
    predict.add_argument("model", help="models/model.keras, or an exported .tflite or .onnx file")
    predict.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)"
    )
    predict.add_argument("--batch-size", type=int, default=64, help="images per model call (default 64)")
    predict.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=f"two-class models only: probability of the second class above which it is predicted "
        f"(default {THRESHOLD})",
    )
    predict.add_argument(
        "--top",
        type=int,
        default=None,
        metavar="K",
        help=f'add "top": the K most probable classes with their probabilities '
        f"(default {DEFAULT_TOP} for more than two classes, 0 for two)",
    )
    predict.add_argument(
        "--runtime",
        choices=(AUTO, *RUNTIMES),
        default=AUTO,
        help="how a .keras model runs: litert (converted once, cached in ~/.cache/transfer/litert; "
        "several times faster on a CPU), keras, or auto (default: litert, else keras with a notice)",
    )
    predict.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's probability with its mirror's",
    )
    predict.add_argument(
        "--reject",
        action="store_true",
        help='print "label": null for photos of none of the classes ("known": false)',
    )


def argument_parser():
    parser = argparse.ArgumentParser(prog="transfer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_predict_command(commands)
    worker = commands.add_parser(
        "worker",
        help="run training stages as a worker of TF_CONFIG's cluster (runtime.strategy multi_worker)",
        description="Train with the chief of TF_CONFIG's cluster, which runs the same stages with "
        "`dvc repro`; a worker writes nothing. Exit status: 0 once the chief has written the outputs, "
        "1 if a stage failed (e.g. a worker died), 2 bad arguments or TF_CONFIG.",
    )
    worker.add_argument(
        "stages", nargs="+", metavar="STAGE", choices=TRAINING_STAGES, help=", ".join(TRAINING_STAGES)
    )
    review = commands.add_parser(
        "review",
        help="a local page to look at the audit's lists and the model's mistakes and decide on each photo",
        description="Serve a page on 127.0.0.1 over the audit's lists (label errors, duplicates, outliers) "
        "and the model's mistakes; every decision (keep, move to a class, drop) is written at once "
        "to data/exclusions.csv, which the next `dvc repro` applies. Run it at the top of the "
        "project after `dvc repro` (or `dvc repro audit`). Prints the page's address, with its "
        "token; opens it in a browser on a desktop. Ctrl-C stops it.",
    )
    review.add_argument("--port", type=int, default=0, help="the port to listen on (default: a free one)")
    review.add_argument("--no-browser", action="store_true", help="print the address only")
    commands.add_parser(
        "plots-template",
        help=f"write {TEMPLATE_FILE}: `dvc plots show`/`diff` pages that draw without network",
        description=f"Write {TEMPLATE_FILE}, the page template .dvc/config gives `dvc plots "
        "show` and `dvc plots diff`: Vega, Vega-Lite and vega-embed inlined, so charts draw offline "
        "(the evaluate stage writes it too).",
    )
    return parser


def main(argv=None):
    args = argument_parser().parse_args(argv)
    try:
        if args.command == "plots-template":
            return plots_template_command()
        if args.command == "worker":
            return worker_command(args)
        if args.command == "review":
            return review_command(args)
        return predict_command(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
