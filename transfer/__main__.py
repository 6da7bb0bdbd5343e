"""Command line: `transfer predict MODEL PATH [PATH ...]`, `transfer plots-template` (or python -m)."""

import argparse
import json
import sys
from pathlib import Path

from transfer.errors import PipelineError
from transfer.inference import RUNTIMES
from transfer.task import THRESHOLD, Task

# --top when not given: the three best classes for K > 2; none for two classes.
DEFAULT_TOP = 3


def predict_command(args):
    from transfer.artifacts import read_class_names
    from transfer.inference import open_model
    from transfer.predict import find_images, predict_files
    from transfer.progress import Progress

    if args.batch_size < 1:
        raise PipelineError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise PipelineError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.top is not None and args.top < 0:
        raise PipelineError(f"--top must be an integer >= 0, got {args.top}")
    if not Path(args.model).is_file():
        raise PipelineError(f"model not found: {args.model}")
    task = Task(read_class_names(args.model))
    if not task.binary and args.threshold is not None:
        raise PipelineError(
            f"--threshold is for two-class models; this one has {task.num_classes} classes "
            "and predicts the most probable"
        )
    files = find_images(args.paths)
    model = open_model(args.model, args.runtime)
    top = args.top if args.top is not None else (0 if task.binary else DEFAULT_TOP)
    threshold = THRESHOLD if args.threshold is None else args.threshold
    failed = 0
    with Progress("predict", len(files)) as progress:
        for result in predict_files(
            model, task, files, args.batch_size, threshold, progress, tta=args.tta, top=top
        ):
            failed += "error" in result
            print(json.dumps(result), flush=False)
    sys.stdout.flush()
    return 1 if failed else 0


def plots_template_command():
    from transfer.plots_page import write_template

    if not Path(".dvc").is_dir():
        raise PipelineError("no .dvc folder here: run this at the top of the project")
    print(write_template())
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="transfer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="label image files with a trained model; one JSON object per image on stdout",
        description="Label images with a trained model. Prints one JSON object per image, in input "
        'order: {"path", "label", "score"[, "top"]} or {"path", "error"}. Exit status: 0 all labelled, '
        "1 some images unreadable, 2 bad arguments or missing model/path.",
    )
    predict.add_argument("model", help="models/model.keras, or an exported .tflite file")
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
        choices=RUNTIMES,
        default="auto",
        help="how a .keras model runs: litert (converted once, cached in ~/.cache/transfer/litert; "
        "several times faster on a CPU), keras, or auto (default: litert, else keras with a notice)",
    )
    predict.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's probability with its mirror's",
    )
    commands.add_parser(
        "plots-template",
        help="write .dvc/offline_plots.html: `dvc plots show`/`diff` pages that draw without network",
        description="Write .dvc/offline_plots.html, the page template .dvc/config gives `dvc plots "
        "show` and `dvc plots diff`: Vega, Vega-Lite and vega-embed inlined, so charts draw offline.",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "plots-template":
            return plots_template_command()
        return predict_command(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
