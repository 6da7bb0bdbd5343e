"""Progress of a long step on stderr: a live bar on a terminal, one line otherwise.

DVC runs stages with their output captured to a log, where a bar redrawn
several times a second would fill it: off a terminal, each step writes a
single summary line when it ends, with its count and rate.
"""

import sys
import time

from tqdm import tqdm


class CurrentStderr:
    """sys.stderr as it is at each write: transfer.core.quiet swaps it while TensorFlow's
    C++ lines are held back, and a bar must keep drawing meanwhile."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()

    def isatty(self):
        return sys.stderr.isatty()

    def fileno(self):  # tqdm reads the terminal's width from it
        return sys.stderr.fileno()


class Progress:
    """`with Progress("extract", total) as progress: ... progress.update(n)`.

    total may be None when it is not known in advance. Nothing is written for
    a step that fails: its error line says what happened.
    """

    def __init__(self, description, total, unit="images", stream=None):
        self.description, self.total, self.unit = description, total, unit
        self.stream = stream or CurrentStderr()
        self.done = 0
        self.bar = None

    def __enter__(self):
        self.start = time.monotonic()
        if self.stream.isatty():
            self.bar = tqdm(total=self.total, desc=self.description, unit=f" {self.unit}", file=self.stream)
        return self

    def update(self, count):
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def __exit__(self, error_type, error, traceback):
        if self.bar is not None:
            self.bar.close()
        elif error_type is None:
            self.stream.write(self.summary(time.monotonic() - self.start) + "\n")
            self.stream.flush()

    def summary(self, seconds):
        rate = self.done / max(seconds, 1e-9)
        rate = f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}"  # 213 images/s, 0.099 files/s
        return f"{self.description}: {self.done} {self.unit} in {seconds:.1f} s ({rate} {self.unit}/s)"
