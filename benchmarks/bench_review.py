"""Time from `transfer review` to its first page drawn: the server started (the address
printed), then the page in Chromium until the first card's photo is decoded on screen.

    python benchmarks/bench_review.py --photos ../shared/data/cats_and_dogs_filtered
    python benchmarks/bench_review.py --project DIR   # a project after `dvc repro`

--photos makes a project on that folder (params.yaml's defaults, the shared MobileNetV2
weights) and runs `dvc repro` first (minutes; not timed). The browser is started before the
clock (a person's browser is open already); each run starts a new server.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, add_weights_argument, folder_repo, measurement_stamp, run_process

sys.path.insert(0, str(ROOT))
from tests.browser import driven_browser  # noqa: E402

FIRST_PHOTO_DRAWN = (
    "const image = document.querySelector('#cards .card img');"
    "return document.body.dataset.ready === 'true' && image !== null"
    " && image.complete && image.naturalWidth > 0;"
)


def first_page(project, browser):
    """(seconds until the address is printed, seconds until the first photo is drawn)."""
    browser.get("about:blank")
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "transfer", "review", "--no-browser"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = server.stdout.readline().split(": ", 1)[1].strip()
        printed = time.perf_counter() - start
        browser.get(address)
        while not browser.execute_script(FIRST_PHOTO_DRAWN):
            time.sleep(0.01)
        return printed, time.perf_counter() - start
    finally:
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--photos", help="a folder of class folders: make a project on it and run dvc repro")
    where.add_argument("--project", help="a project where `dvc repro` has run")
    add_weights_argument(parser)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        if args.photos:
            photos, weights = Path(args.photos).resolve(), Path(args.weights).resolve()
            project = folder_repo(Path(temporary) / "repo", photos, weights)
            run_process(["dvc", "repro"], project)
        else:
            project = Path(args.project).resolve()
        with driven_browser() as browser:
            runs = [first_page(project, browser) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                **measurement_stamp(),
                "project": str(args.photos or args.project),
                "address_printed_s": [round(printed, 3) for printed, _ in runs],
                "first_photo_drawn_s": [round(drawn, 3) for _, drawn in runs],
                "median_address_printed_s": round(statistics.median(printed for printed, _ in runs), 3),
                "median_first_photo_drawn_s": round(statistics.median(drawn for _, drawn in runs), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
