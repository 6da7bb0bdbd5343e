import subprocess
import sys
import textwrap

import pytest

from tests.conftest import PROJECT_ROOT


def run_stage_with(main_body):
    script = textwrap.dedent(
        """
        import os, signal
        from transfer.core.errors import PipelineError, run_stage

        def main():
        {body}

        run_stage(main)
        """
    ).format(body=textwrap.indent(textwrap.dedent(main_body), "    "))
    return subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "main_body",
    [
        "os.kill(os.getpid(), signal.SIGINT)",
        # What some TensorFlow C++ calls do with the KeyboardInterrupt: swallow it.
        """
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        print("went on")
        """,
        # What others do: the KeyboardInterrupt, raised inside a C++ call back into Python,
        # comes out as another error (seen: SystemError from __import__, then a TypeError
        # from Keras's layer call).
        """
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            raise TypeError("Exception encountered when calling Rescaling.call()")
        """,
    ],
)
def test_ctrl_c_exits_130_even_when_the_interrupt_was_swallowed(main_body):
    result = run_stage_with(main_body)
    assert result.returncode == 130
    assert result.stderr.strip().splitlines()[-1] == "interrupted"


def test_a_pipeline_error_is_one_line_and_exit_1():
    result = run_stage_with('raise PipelineError("data.path: no such folder")')
    assert result.returncode == 1
    assert result.stderr == "error: data.path: no such folder\n"


def test_any_other_error_without_an_interrupt_still_shows_its_traceback():
    result = run_stage_with('raise TypeError("a bug")')
    assert result.returncode == 1
    assert "Traceback" in result.stderr and result.stderr.strip().endswith("TypeError: a bug")
