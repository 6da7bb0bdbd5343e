"""Transfer learning from ImageNet MobileNetV2, one DVC stage at a time.

Importing the package sets TensorFlow's environment defaults, so it must be
imported before TensorFlow (every stage script and test does).
"""

import os

# oneDNN is off by default on AMD CPUs and makes MobileNetV2 1.4-1.7x faster
# there; a user's explicit setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# Hide TensorFlow's INFO lines once its logging is initialised; errors and
# warnings still show. The lines it writes before that are filtered by quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from transfer.core import quiet  # noqa: E402

quiet.install()
