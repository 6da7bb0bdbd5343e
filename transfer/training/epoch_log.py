"""The training stages' per-epoch figures, logged through DVCLive.

One DVCLive folder per stage, dvclive/<stage> (two stages cannot share an output, and DVC
deletes a stage's outputs before it runs). After every epoch DVCLive rewrites
dvclive/<stage>/metrics.json, a `metrics` file of dvc.yaml, with that epoch's figures: so
`dvc exp show` (workspace, --temp or queued runs alike), the VS Code extension and DVC
Studio show a run while it trains. Every epoch is kept in
dvclive/<stage>/plots/metrics/<stage>/<figure>.tsv, which the learning curves read.

Figures are named <stage>/<figure>, so their `dvc exp show` columns (train_head.val_loss,
finetune.val_loss) are unique and short; the learning rate is `lr`, as `learning_rate` is a
param's name. Epochs are numbered from 1 and continue across the two stages, as the step.

dvc.yaml stays hand-written (dvcyaml=False); DVCLive saves no experiment of its own
(save_dvc_exp=False: `dvc exp run` does). It posts to DVC Studio only when a user has
logged in (`dvc studio login` or DVC_STUDIO_TOKEN): otherwise it makes no network call.
"""

import csv
from pathlib import Path

KERAS_FIGURES = ("loss", "accuracy", "val_loss", "val_accuracy")  # what Keras's fit reports
FIGURES = (*KERAS_FIGURES, "lr")
STAGES = ("train_head", "finetune")


def log_folder(stage, root="."):
    return Path(root) / "dvclive" / stage


def figure_file(stage, figure, root="."):
    """DVCLive's history of one figure: a TSV of step and value, one row per epoch."""
    return log_folder(stage, root) / "plots" / "metrics" / stage / f"{figure}.tsv"


class EpochLog:
    """A training stage's DVCLive log: created empty, one step per epoch, ended once."""

    def __init__(self, stage, root="."):
        from dvclive import Live

        self.stage = stage
        self.live = Live(str(log_folder(stage, root)), dvcyaml=False, save_dvc_exp=False)

    def epoch(self, number, figures):
        """Log one epoch's figures (a dict holding FIGURES' keys) as step `number`, and
        rewrite metrics.json, so a reader sees this epoch now."""
        self.live.step = number
        for figure in FIGURES:
            self.live.log_metric(f"{self.stage}/{figure}", float(figures[figure]))
        self.live.next_step()

    def end(self):
        self.live.end()


def read_epochs(stage, root="."):
    """Rows of epoch and FIGURES, one per epoch logged, read from DVCLive's files."""
    rows = {}
    for figure in FIGURES:
        with open(figure_file(stage, figure, root), newline="") as file:
            for row in csv.DictReader(file, delimiter="\t"):
                epoch = int(row["step"])
                rows.setdefault(epoch, {"epoch": epoch})[figure] = float(row[figure])
    return [rows[epoch] for epoch in sorted(rows)]
