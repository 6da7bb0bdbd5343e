"""The benchmark still runs: every section once on a few photos (`benchmarks/run.py --smoke`),
so that a changed signature it calls cannot break it unseen. Its figures are not checked: at
this size they mean nothing (the measured ones are in benchmarks/results.json)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

SECTIONS = ("extract", "finetune", "backbones", "head", "litert", "scale", "audit", "pipeline")


def run_benchmark(*args):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "run.py"), *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )


# The two sections that run the whole pipeline (scale: every stage as a process; pipeline:
# `dvc repro`) take half of the smoke run's six minutes: the default run leaves them to
# --slow, and the pipeline itself runs end to end in tests/test_pipeline*.py.
WHOLE_PIPELINE = ("scale", "pipeline")


@pytest.mark.e2e
@pytest.mark.parametrize(
    "sections",
    [
        pytest.param([name for name in SECTIONS if name not in WHOLE_PIPELINE], id="all_but_whole_pipeline"),
        pytest.param(list(WHOLE_PIPELINE), id="whole_pipeline", marks=pytest.mark.slow),
    ],
)
def test_every_benchmark_section_runs_once_on_a_few_photos(sections, tmp_path, shared_photos, shared_weights):
    out = tmp_path / "results.json"
    skip = ",".join(name for name in SECTIONS if name not in sections)
    arguments = ["--photos", shared_photos, "--weights", shared_weights, "--out", out, "--skip", skip]
    result = run_benchmark("--smoke", *arguments)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["measured"]) == set(sections)
    assert all(results[section] for section in sections)
    if "litert" in sections:
        assert results["litert"]["predict"]["keras_runtime_litert"]["photos_per_s"] > 0
    if "head" in sections:
        assert "head experiment, 1 epochs (s)" in result.stdout  # the table printed at the end


def test_a_smoke_run_never_replaces_the_measured_figures():
    result = run_benchmark("--smoke")
    assert result.returncode == 2 and "--smoke needs --out elsewhere" in result.stderr
