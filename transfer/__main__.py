"""Command line: `python -m transfer predict MODEL PATH [PATH ...]`."""

import argparse
import json
import sys

from transfer.errors import PipelineError
from transfer.reports import THRESHOLD


def predict_command(args):
    from transfer.predict import Progress, find_images, open_model, predict_files, read_class_names

    if args.batch_size < 1:
        raise PipelineError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if not 0 < args.threshold < 1:
        raise PipelineError(f"--threshold must be between 0 and 1, got {args.threshold}")
    files = find_images(args.paths)
    model = open_model(args.model)
    class_names = read_class_names(args.model)
    progress = Progress() if sys.stderr.isatty() and len(files) > args.batch_size else None
    failed = 0
    for result in predict_files(
        model, class_names, files, args.batch_size, args.threshold, progress, tta=args.tta
    ):
        failed += "error" in result
        print(json.dumps(result), flush=False)
    sys.stdout.flush()
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m transfer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="label image files with a trained model; one JSON object per image on stdout",
        description="Label images with a trained model. Prints one JSON object per image, in input "
        'order: {"path", "label", "score"} or {"path", "error"}. Exit status: 0 all labelled, '
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
        default=THRESHOLD,
        help=f"probability of the second class above which it is predicted (default {THRESHOLD})",
    )
    predict.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's probability with its mirror's",
    )
    args = parser.parse_args(argv)
    try:
        return predict_command(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
