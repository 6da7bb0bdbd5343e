"""data/exclusions.csv: what a person decided about a photo: drop it, move it to another class,
or keep it as it is.

Columns `path,action,reason,sha256` (a file of the first two alone, `path,action`, as written
by hand, reads too). `path` as the audit's lists print it (the file's path relative to
data.path, or the tfds split and index; for a folder, an absolute path or one relative to the
project that lies inside data.path works too). `action`: `drop`, `keep`, or the name of the
class the photo really belongs to. `reason` is free text (`transfer review` writes why a photo
was dropped: none of the classes, ambiguous, duplicate). `sha256` is the photo file's content
hash when the decision was made (empty for a tfds source, whose versioned examples do not
change): a photo kept or relabelled is not flagged again by the audit while its file still has
that hash (`reviewed`). prepare reads the file (a DVC dependency), so editing it reruns the
pipeline on the cleaned set; a relabelled photo stays in its split (the split is keyed by its
path). The shipped file has the header only: it changes nothing.
"""

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from transfer.core.errors import PipelineError
from transfer.core.io import file_sha256, update_mapping_file

EXCLUSIONS = "data/exclusions.csv"
COLUMNS = ("path", "action", "reason", "sha256")
HAND_WRITTEN_COLUMNS = COLUMNS[:2]
DROP = "drop"
KEEP = "keep"


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str = ""
    sha256: str = ""

    def row(self, photo):
        return {"path": photo, "action": self.action, "reason": self.reason, "sha256": self.sha256}


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

    def __init__(self, decisions=None, source=EXCLUSIONS):
        # photo -> Decision; a plain action string is taken as a Decision with no reason or hash.
        self.decisions = {
            photo: decision if isinstance(decision, Decision) else Decision(decision)
            for photo, decision in (decisions or {}).items()
        }
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
            if tuple(reader.fieldnames or ()) not in (COLUMNS, HAND_WRITTEN_COLUMNS):
                columns, hand_written = ",".join(COLUMNS), ",".join(HAND_WRITTEN_COLUMNS)
                raise PipelineError(f"{path}: the header must be `{columns}` (or `{hand_written}`)")
            decisions = {}
            for line, row in enumerate(reader, start=2):
                photo, action = (row["path"] or "").strip(), (row["action"] or "").strip()
                if not photo or not action:
                    raise PipelineError(
                        f"{path} line {line}: needs a path and an action (drop, keep or a class)"
                    )
                if data_path is not None:
                    photo = key_in_folder(photo, data_path, f"{path} line {line}")
                if photo in decisions and decisions[photo].action != action:
                    raise PipelineError(f"{path} line {line}: {photo} is listed twice with different actions")
                decision = Decision(
                    action, (row.get("reason") or "").strip(), (row.get("sha256") or "").strip()
                )
                decisions[photo] = decision
        return cls(decisions, source=str(path))

    @property
    def actions(self):
        return {photo: decision.action for photo, decision in self.decisions.items()}

    def bind(self, class_names):
        """Check every relabelling names one of the dataset's classes; apply() needs this first."""
        self.class_names = list(class_names)
        for photo, action in self.actions.items():
            if action not in (DROP, KEEP) and action not in class_names:
                raise PipelineError(
                    f"{self.source}: {photo} -> '{action}' is neither drop, keep nor a class "
                    f"({', '.join(class_names)})"
                )

    def label_of(self, example_id, label):
        """The label the photo keeps (its own, or the one it is moved to), or None to drop it."""
        decision = self.decisions.get(str(example_id))
        if decision is None or decision.action == KEEP:
            return label
        return None if decision.action == DROP else self.class_names.index(decision.action)

    def apply(self, example_id, label):
        """label_of, counted: what prepare.json reports and check_all_applied checks."""
        new_label = self.label_of(example_id, label)
        decision = self.decisions.get(str(example_id))
        if decision is not None:
            self._seen.add(str(example_id))
            if decision.action != KEEP:
                self.applied[DROP if new_label is None else "relabel"] += 1
        return new_label

    def check_all_applied(self):
        """A listed photo that is not in the dataset is a typo or a stale line: say which."""
        missing = sorted(set(self.decisions) - self._seen)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise PipelineError(f"{self.source} lists a photo that is not in the dataset: {missing[0]}{more}")

    def reviewed(self, photo_file):
        """The photos a person kept or relabelled, whose content is as it was when they decided:
        the audit does not flag them again. photo_file(photo) -> its file, or None where the
        source has none (tfds): then the decision stands by the photo's id alone."""
        reviewed = set()
        for photo, decision in self.decisions.items():
            if decision.action == DROP:
                continue
            file = photo_file(photo)
            if not decision.sha256 or file is None or content_hash(file) == decision.sha256:
                reviewed.add(photo)
        return reviewed


def content_hash(file):
    """The sha256 column's value for a photo file ("" when there is none)."""
    return file_sha256(file) if file is not None and Path(file).is_file() else ""


def csv_text(decisions):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(decision.row(photo) for photo, decision in decisions.items())
    return buffer.getvalue()


def update_exclusions(changes, path=EXCLUSIONS):
    """Apply {photo: Decision, or None to remove its line} to the file at once, and return what
    those photos' lines were before (the same form: what undoing writes back). The file is
    replaced atomically, so a reader (or a kill) sees the old file or the new one, whole."""
    return update_mapping_file(path, changes, lambda file: Exclusions.read(file).decisions, csv_text)
