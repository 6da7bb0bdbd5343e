"""Progress on stderr: a tqdm bar on a terminal, one summary line off it (DVC's logs).

The stage and predict runs below also show that a CPU machine's stderr holds
nothing else: no TensorFlow start-up lines (see transfer/core/quiet.py).
"""

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from tests.conftest import PROJECT_ROOT, SUMMARY, make_image_folder, write_params
from transfer.core.progress import Progress
from transfer.data.sources.folder import prepare_folder

SIZE = 32


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_a_step_writes_one_summary_line_with_count_and_rate():
    stream = io.StringIO()
    with Progress("extract: features", 50, stream=stream) as progress:
        for _ in range(5):
            progress.update(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    match = SUMMARY.match(lines[0])
    assert match and match["step"] == "extract: features" and match["count"] == "50"


def test_slow_steps_give_their_rate_in_two_digits():
    progress = Progress("export: converting", 3, unit="files")
    progress.done = 3
    assert progress.summary(30.3) == "export: converting: 3 files in 30.3 s (0.099 files/s)"
    assert SUMMARY.match(progress.summary(30.3))


def test_a_failing_step_writes_no_summary_line():
    stream = io.StringIO()
    with pytest.raises(RuntimeError), Progress("extract: features", 50, stream=stream) as progress:
        progress.update(10)
        raise RuntimeError("the step failed")
    assert stream.getvalue() == ""


def test_on_a_terminal_a_step_draws_a_bar_and_no_summary_line():
    stream = Terminal()
    with Progress("predict", 4, stream=stream) as progress:
        for _ in range(4):
            progress.update(1)
    assert "predict: 100%|" in stream.getvalue() and "4/4" in stream.getvalue()
    assert not any(SUMMARY.match(line) for line in stream.getvalue().splitlines())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder with prepared 32 px images, params.yaml for them, and a saved classifier."""
    from transfer.models.networks import build_base, build_classifier, build_head

    root = tmp_path_factory.mktemp("progress")
    photos = make_image_folder(root / "photos", per_class=40)
    prepare_folder(photos, root / "data" / "prepared", SIZE, [0.5, 0.25, 0.25], 0)
    write_params(root / "params.yaml", data__image_size=SIZE, model__weights="none")
    build_classifier(build_base(SIZE, "none"), build_head()).save(root / "model.keras")
    # What extract checks on start, as dvc repro writes it first.
    subprocess.run([sys.executable, str(PROJECT_ROOT / "stages" / "runtime.py")], cwd=root, check=True)
    (root / "classes.json").write_text('{"class_names": ["cats", "dogs"]}')
    return root, photos


def command(step, project):
    root, photos = project
    if step == "extract: features":
        return [sys.executable, str(PROJECT_ROOT / "stages" / "extract.py")]
    # Keras: TensorFlow in the process (LiteRT, the default, runs without it).
    return [
        sys.executable,
        "-m",
        "transfer",
        "predict",
        "--runtime",
        "keras",
        str(root / "model.keras"),
        str(photos),
    ]


# `python -m transfer` from the project's folder, wherever the test runs it.
ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


def run_on_terminal(command, cwd):
    """Run command with stderr on a pseudo-terminal; returns (exit status, what it wrote there)."""
    leader, follower = pty.openpty()
    # 24 rows x 100 columns, as a terminal window has (a new pty has zero columns).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        command, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    written = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    return process.wait(timeout=300), written.decode(errors="replace")


STEPS = ["extract: features", "predict"]


@pytest.mark.parametrize("step", STEPS)
def test_off_a_terminal_stderr_is_one_summary_line_and_nothing_else(project, step):
    root, _ = project
    result = subprocess.run(
        command(step, project), cwd=root, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    # No TensorFlow start-up lines (oneDNN, CUDA, cuInit, absl): only the summary.
    assert len(lines) == 1, result.stderr
    match = SUMMARY.match(lines[0])
    assert match and match["step"] == step and match["count"] == "80"


@pytest.mark.parametrize("step", STEPS)
def test_on_a_terminal_extract_and_predict_draw_a_progress_bar(project, step):
    root, _ = project
    status, written = run_on_terminal(command(step, project), root)
    assert status == 0, written
    assert f"{step}: 100%|" in written and "80/80" in written and "images/s" in written, written
    assert not any(SUMMARY.match(line) for line in written.splitlines())
