"""The one exception type that stages turn into a one-line message."""

import sys


class PipelineError(Exception):
    """Bad params or bad input: the user can fix it; no traceback needed."""


def run_stage(main):
    """Run a stage's main(); report a PipelineError as one line and exit 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
