"""TensorFlow's C++ start-up lines, kept off stderr.

Importing TensorFlow 2.21 on a machine without a GPU writes 5-7 lines to
stderr (oneDNN, "Could not find cuda drivers", "failed call to cuInit", the
CPU-feature banner) before absl's logging is initialised, so TF_CPP_MIN_LOG_LEVEL
cannot hide them and a user reads "E0000 ... CUDA error" as a failure.

`install()` (called when the package is imported) wraps the first
`import tensorflow` of the process: while TensorFlow loads and finds its
devices, file descriptor 2 goes to a temporary file; afterwards every captured
line that is not one of the known start-up lines is written to stderr, so real
warnings and errors still show. Modules keep a plain `import tensorflow`, and
processes that never import TensorFlow (predict on a .tflite file) never pay for it.

The same window, `info_lines_filtered()`, holds back the C++ INFO lines of two
calls that write dozens of them (the TFLite converter, LiteRT's interpreter set-up):
what TF_CPP_MIN_LOG_LEVEL=1 asks for; `converter_lines_filtered()` also the converter's
few known lines of every run. Everything else TensorFlow writes is untouched.
"""

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import warnings

# The sources of the lines seen on a CPU machine. Only these: a GPU machine's
# CUDA lines (cuda_executor, cuda_dnn, ...) may be real problems and still show.
START_UP_SOURCES = ("port", "cudart_stub", "cpu_feature_guard", "cuda_platform")
START_UP_LINE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    rf"|^[IWE]\d{{4}} [\d:. ]+\d+ ({'|'.join(START_UP_SOURCES)})\.cc:\d+\]"
    r"|^To enable the following instructions: .*rebuild TensorFlow"
)


# INFO lines of TensorFlow's C++ code (the TFLite converter's, dozens per file)
# and LiteRT's interpreter ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.").
INFO_LINE = re.compile(r"^I\d{4} [\d:. ]+\d+ [\w.]+:\d+\]|^INFO: ")


# What the TFLite converter writes on every conversion, none of it a problem: its quantizer's
# settings line, and the warnings of options the Python API always passes.
CONVERTER_LINE = re.compile(
    r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$"
    r"|^W\d{4} [\d:. ]+\d+ tf_tfl_flatbuffer_helpers\.cc:\d+\] "
    r"Ignored (output_format|drop_control_dependency)\.$"
    r"|^W\d{4} [\d:. ]+\d+ flatbuffer_export\.cc:\d+\] Skipping runtime version metadata in the model\."
)


def is_start_up_line(line):
    return bool(START_UP_LINE.search(line))


def is_info_line(line):
    """What TF_CPP_MIN_LOG_LEVEL=1 means to hide, but cannot before absl logging starts."""
    return bool(INFO_LINE.search(line))


@contextlib.contextmanager
def stderr_filtered(is_noise):
    """C++ writes to file descriptor 2 are held in a file and written back, less the
    lines is_noise picks, at the end. Python's own writes meanwhile (warnings,
    progress bars: sys.stderr) still go straight to the real stderr."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        if _writes_to_fd_2(python_stderr):
            sys.stderr = open(os.dup(saved_stderr), "w", buffering=1, errors="backslashreplace")
        try:
            yield
        finally:
            if sys.stderr is not python_stderr:
                sys.stderr.close()
                sys.stderr = python_stderr
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_noise(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def _writes_to_fd_2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # e.g. pytest's capture
        return False


def start_up_lines_filtered():
    return stderr_filtered(is_start_up_line)


def info_lines_filtered():
    return stderr_filtered(is_info_line)


@contextlib.contextmanager
def converter_lines_filtered():
    """The TFLite converter's INFO lines and CONVERTER_LINE, and the deprecation warning
    TensorFlow's own int8 calibration raises (it runs tf.lite.Interpreter, not ours)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        with stderr_filtered(lambda line: is_info_line(line) or bool(CONVERTER_LINE.search(line))):
            yield


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader
        with start_up_lines_filtered():
            self.loader.exec_module(module)
            # The CUDA platform (and its cuInit line) loads with the first device query.
            module.config.list_physical_devices()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install():
    """Filter the start-up lines of this process's first `import tensorflow`."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
