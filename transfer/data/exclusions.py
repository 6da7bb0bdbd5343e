"""data/exclusions.csv: the photos a person decided to drop or move to another class.

Columns `path,action`: `path` as the audit's lists print it (the file's path relative to
data.path, or the tfds split and index; for a folder, an absolute path or one relative to the
project that lies inside data.path works too), `action` either `drop` or the name of the class the
photo really belongs to. prepare reads it (a DVC dependency), so editing it reruns the
pipeline on the cleaned set; a relabelled photo stays in its split (the split is keyed by its
path). The shipped file has the header only: it changes nothing.
"""

import csv
import os
from pathlib import Path

from transfer.core.errors import PipelineError

EXCLUSIONS = "data/exclusions.csv"
COLUMNS = ("path", "action")
DROP = "drop"


def key_in_folder(photo, data_path, where):
    """A listed photo as prepare keys it, relative to data.path: as written when it names a file
    there (or none anywhere, for check_all_applied to report), else the part of an absolute or
    project-relative path inside data.path."""
    relative = Path(photo)
    if not relative.is_absolute() and ((Path(data_path) / relative).exists() or not relative.exists()):
        return relative.as_posix()
    # abspath, not resolve: a photo that is a symbolic link is keyed by where it sits in data.path.
    absolute, root = Path(os.path.abspath(photo)), Path(os.path.abspath(data_path))
    if not absolute.is_relative_to(root):
        raise PipelineError(
            f"{where}: {photo} is not inside data.path ({data_path}): list photos by their path "
            "relative to data.path (e.g. cats/001.jpg), or by a path inside it"
        )
    return absolute.relative_to(root).as_posix()


class Exclusions:
    """What to do with each listed photo; `apply` gives the label to keep, or None to drop."""

    def __init__(self, actions=None, source=EXCLUSIONS):
        self.actions = dict(actions or {})
        self.source = source
        self.applied = {DROP: 0, "relabel": 0}
        self._seen = set()

    @classmethod
    def read(cls, path=EXCLUSIONS, data_path=None):
        """The file's actions; no file means no exclusions (a project that predates it).

        data_path: a folder source's data.path, against which a listed path may also be
        given absolute or relative to the project (as predict and a file manager show it)."""
        path = Path(path)
        if not path.is_file():
            return cls(source=str(path))
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise PipelineError(f"{path}: the header must be `{','.join(COLUMNS)}`")
            actions = {}
            for line, row in enumerate(reader, start=2):
                photo, action = (row["path"] or "").strip(), (row["action"] or "").strip()
                if not photo or not action:
                    raise PipelineError(f"{path} line {line}: needs a path and an action (drop or a class)")
                if data_path is not None:
                    photo = key_in_folder(photo, data_path, f"{path} line {line}")
                if actions.get(photo, action) != action:
                    raise PipelineError(f"{path} line {line}: {photo} is listed twice with different actions")
                actions[photo] = action
        return cls(actions, source=str(path))

    def bind(self, class_names):
        """Check every relabelling names one of the dataset's classes; apply() needs this first."""
        self.class_names = list(class_names)
        for photo, action in self.actions.items():
            if action != DROP and action not in class_names:
                raise PipelineError(
                    f"{self.source}: {photo} -> '{action}' is neither drop nor a class "
                    f"({', '.join(class_names)})"
                )

    def label_of(self, example_id, label):
        """The label the photo keeps (its own, or the one it is moved to), or None to drop it."""
        action = self.actions.get(str(example_id))
        if action is None:
            return label
        return None if action == DROP else self.class_names.index(action)

    def apply(self, example_id, label):
        """label_of, counted: what prepare.json reports and check_all_applied checks."""
        new_label = self.label_of(example_id, label)
        if str(example_id) in self.actions:
            self._seen.add(str(example_id))
            self.applied[DROP if new_label is None else "relabel"] += 1
        return new_label

    def check_all_applied(self):
        """A listed photo that is not in the dataset is a typo or a stale line: say which."""
        missing = sorted(set(self.actions) - self._seen)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise PipelineError(f"{self.source} lists a photo that is not in the dataset: {missing[0]}{more}")
