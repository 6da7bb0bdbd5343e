"""The figures the tutorial draws (matplotlib, files only)."""

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only: stages run without a display

import matplotlib.pyplot as plt  # noqa: E402


def plot_samples(images, labels, class_names, path, count=9):
    """A 3x3 grid of images with their class names (the tutorial's first look)."""
    count = min(count, len(images))
    columns = 3
    rows = max(1, -(-count // columns))
    figure = plt.figure(figsize=(3 * columns, 3 * rows))
    for index in range(count):
        axis = figure.add_subplot(rows, columns, index + 1)
        axis.imshow(images[index])
        axis.set_title(class_names[int(labels[index])])
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, format="png", bbox_inches="tight")
    plt.close(figure)


def plot_grid(images, captions, path, empty_text, columns=4):
    """A grid of images with two-line captions (None: an empty cell); empty_text if there are none."""
    count = len(images)
    rows = max(1, -(-count // columns))
    figure = plt.figure(figsize=(3 * columns, 3.3 * rows))
    if count == 0:
        figure.text(0.5, 0.5, empty_text, ha="center", va="center", fontsize=16)
    for index in range(count):
        if images[index] is None:
            continue
        axis = figure.add_subplot(rows, columns, index + 1)
        axis.imshow(images[index])
        axis.set_title(captions[index], fontsize=10, color="darkred")
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, format="png", bbox_inches="tight")
    plt.close(figure)


def plot_learning_curves(history, path, fine_tune_start=None):
    """Training and validation accuracy and loss per epoch, as in the tutorial.

    history: rows with epoch, accuracy, val_accuracy, loss, val_loss. With
    fine_tune_start (the last head epoch), a vertical line marks where
    fine-tuning starts.
    """
    epochs = [int(row["epoch"]) for row in history]
    figure, (accuracy_axis, loss_axis) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for axis, metric, title in (
        (accuracy_axis, "accuracy", "Training and Validation Accuracy"),
        (loss_axis, "loss", "Training and Validation Cross Entropy"),
    ):
        axis.plot(epochs, [float(row[metric]) for row in history], marker="o", label=f"Training {metric}")
        axis.plot(
            epochs, [float(row[f"val_{metric}"]) for row in history], marker="o", label=f"Validation {metric}"
        )
        if fine_tune_start is not None:
            axis.axvline(fine_tune_start + 0.5, color="gray", linestyle="--", label="Start Fine Tuning")
        axis.set_title(title)
        axis.set_ylabel(metric)
        axis.legend(loc="best")
    loss_axis.set_xlabel("epoch")
    loss_axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    figure.tight_layout()
    figure.savefig(path, format="png", bbox_inches="tight")
    plt.close(figure)
