"""The one exception type that stages turn into a one-line message, and Ctrl-C."""

import signal
import sys


class PipelineError(Exception):
    """Bad params or bad input: the user can fix it; no traceback needed."""


def one_line(error):
    """An exception's message on one line, for an `error: ...` line or a skipped-file reason."""
    return " ".join(str(error).split())


_interrupted = False


def _on_interrupt(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def interrupted():
    """True once SIGINT arrived, even if the KeyboardInterrupt it raised was lost.

    Python raises KeyboardInterrupt wherever the main thread happens to be;
    inside some TensorFlow C++ calls it is printed and swallowed, and training
    would go on. The flag lets a Keras callback raise it again (see
    transfer.training.recipe.StopOnInterrupt).
    """
    return _interrupted


def run_stage(main):
    """Run a stage's main(); report a PipelineError as one line and exit 1,
    an interrupt as 'interrupted' and exit 130."""
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    except Exception:
        # A KeyboardInterrupt raised inside a TensorFlow C++ call back into Python can come
        # out as another error (a SystemError from __import__, re-raised by Keras as a
        # TypeError): after Ctrl-C, it is the interrupt still. Without one, a bug's traceback.
        if not interrupted():
            raise
    if interrupted():
        print("interrupted", file=sys.stderr)
        sys.exit(130)
