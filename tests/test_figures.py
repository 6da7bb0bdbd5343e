import numpy as np
from PIL import Image

from transfer.reporting.figures import plot_grid, plot_learning_curves, plot_samples


def test_plots_are_written_as_png(tmp_path):
    images = np.zeros((4, 16, 16, 3), np.uint8)
    plot_samples(images, [0, 1, 0, 1], ["cats", "dogs"], tmp_path / "samples.png")
    history = [
        {"epoch": 1, "accuracy": 0.6, "val_accuracy": 0.7, "loss": 0.9, "val_loss": 0.8},
        {"epoch": 2, "accuracy": 0.8, "val_accuracy": 0.8, "loss": 0.5, "val_loss": 0.6},
        {"epoch": 3, "accuracy": 0.9, "val_accuracy": 0.85, "loss": 0.3, "val_loss": 0.4},
    ]
    plot_learning_curves(history, tmp_path / "curves.png", fine_tune_start=2)
    plot_grid(images[:3], ["true cats\npredicted dogs (0.97)"] * 3, tmp_path / "wrong.png", "none")
    plot_grid([], [], tmp_path / "none_wrong.png", "No misclassified test images")
    for name in ("samples.png", "curves.png", "wrong.png", "none_wrong.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 300
