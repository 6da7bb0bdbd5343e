"""TensorFlow's C++ start-up lines stay off stderr; every other line still shows.

tests/test_progress.py runs a stage and predict and finds nothing on stderr but
their summary line.
"""

import subprocess
import sys

from tests.conftest import PROJECT_ROOT
from transfer.core.quiet import is_start_up_line

IMPORT_TENSORFLOW = (
    "import tensorflow as tf; tf.config.list_physical_devices(); print(tf.reduce_sum([1, 2]).numpy())"
)
STAMP = "0000 00:00:1795916335.054640   19112"


def python(code):
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


def test_every_line_tensorflow_writes_at_start_up_here_is_recognised():
    # Without the package, this TensorFlow writes its start-up lines (oneDNN, CUDA stub, cuInit).
    result = python(IMPORT_TENSORFLOW)
    lines = result.stderr.splitlines()
    assert result.stdout.strip() == "3"
    assert any("cuInit" in line or "cuda" in line for line in lines), result.stderr
    assert [line for line in lines if not is_start_up_line(line)] == []


def test_after_the_package_tensorflow_starts_with_nothing_on_stderr():
    result = python("import transfer; " + IMPORT_TENSORFLOW)
    assert result.stdout.strip() == "3"
    assert result.stderr == ""


def test_lines_that_are_not_start_up_lines_still_show_in_order():
    lines = [
        f"I{STAMP} port.cc:153] oneDNN custom operations are on.",
        f"W{STAMP} real.cc:10] a real warning",
        f"E{STAMP} cuda_platform.cc:52] failed call to cuInit",
        "Traceback: a real error",
    ]
    code = (
        "import os, sys\n"
        "from transfer.core.quiet import start_up_lines_filtered\n"
        "with start_up_lines_filtered():\n"
        "    for line in sys.argv[1:]:\n"
        "        os.write(2, line.encode() + b'\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *lines], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stderr.splitlines() == [lines[1], lines[3]]


def test_python_writes_go_straight_through_while_cpp_lines_are_held():
    # A progress bar drawn from Python keeps drawing while a TensorFlow call's C++ lines are held.
    code = (
        "import os, sys\n"
        "from transfer.core.quiet import info_lines_filtered\n"
        "with info_lines_filtered():\n"
        f"    os.write(2, b'I{STAMP} reader.cc:83] Reading SavedModel\\n')\n"
        f"    os.write(2, b'W{STAMP} helpers.cc:364] a warning\\n')\n"
        "    sys.stderr.write('progress 1/2\\n')\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "sys.stderr.write('after\\n')\n"
    )
    result = python(code)
    assert result.stderr.splitlines() == ["progress 1/2", f"W{STAMP} helpers.cc:364] a warning", "after"]


CONVERT_FLOAT_AND_INT8 = """
import transfer
import keras, numpy as np
from transfer.deploy.export.tflite import int8_float_ops
from transfer.inference.litert import plain_saved_model, tflite_bytes
inputs = keras.Input((32, 32, 3))
x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
model = keras.Model(inputs, keras.layers.Dense(1)(x))
images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
with plain_saved_model(model) as saved_model:
    sizes = [len(tflite_bytes(saved_model)), len(tflite_bytes(saved_model, images, None, int8_float_ops()))]
print(min(sizes) > 0)
"""


def test_converting_to_tflite_float32_and_int8_writes_nothing_on_stderr():
    # The export stage's conversions: no quantizer settings line, no deprecation warning.
    result = python(CONVERT_FLOAT_AND_INT8)
    assert result.stdout.strip() == "True", result.stderr[-2000:]
    assert result.stderr == ""
