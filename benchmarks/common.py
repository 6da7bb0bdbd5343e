"""What every benchmark section shares: timing, processes, peak memory, project copies."""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import transfer  # noqa: E402, F401  (TensorFlow environment defaults)

DVC_STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# The stages after `runtime` and `pool` (which run on every repro), in dvc.yaml's order, and
# the module each runs (`python -m MODULE`).
STAGES = [name for name, stage in DVC_STAGES.items() if not stage.get("always_changed")]
STAGE_MODULES = {name: stage["cmd"].split()[-1] for name, stage in DVC_STAGES.items()}


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


SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.h5"


def folder_repo(directory, photos, weights, **params):
    """make_repo on a folder of photos with local weights; params: more ("section.key": value)."""
    base = {"data.source": "folder", "data.path": str(photos), "model.weights": str(weights)}
    return make_repo(directory, {**base, **params})


def add_weights_argument(parser):
    parser.add_argument(
        "--weights", default=str(SHARED_WEIGHTS), help="the backbone's .h5 (default: ../shared's)"
    )


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
