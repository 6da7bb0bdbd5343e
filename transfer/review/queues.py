"""The review's queues: one row per queue, each read from the table a stage writes, ranked as
that stage ranks it. A card is what a person decides on: one photo, or a duplicate group (one
decision for the group: keep one, drop the rest)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transfer.core import artifacts
from transfer.core.io import read_csv
from transfer.data.pool import pool_id


def photo(row, class_column):
    return {"path": row["path"], "split": row["split"], "class": row[class_column]}


def label_cards(rows):
    return [
        {
            "key": row["path"],
            "photos": [photo(row, "given")],
            "suggested": row["suggested"],
            "facts": [
                ["given", row["given"]],
                ["suggested", row["suggested"]],
                ["suggested, out of sample", row["suggested_probability"]],
                ["split", row["split"]],
            ],
        }
        for row in rows
    ]


def duplicate_cards(rows):
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    cards = []
    for number, members in groups.items():
        splits = sorted({row["split"] for row in members})
        cards.append(
            {
                "key": f"group {number}",
                "group": True,
                "leak": len(splits) > 1,
                "photos": [photo(row, "class") for row in members],
                "facts": [
                    ["group", f"{number} ({members[0]['kind']}, {len(members)} photos)"],
                    ["splits", ", ".join(splits) + (" - a leak" if len(splits) > 1 else "")],
                    ["similarity", ", ".join(row["similarity"] for row in members)],
                ],
            }
        )
    return cards


def outlier_cards(rows):
    return [
        {
            "key": row["path"],
            "photos": [photo(row, "class")],
            "facts": [["class", row["class"]], ["isolation", row["isolation"]], ["split", row["split"]]],
        }
        for row in rows
    ]


def model_card(row):
    return {
        "key": row["path"],
        "photos": [photo(row, "true")],
        "suggested": row["predicted"],
        "facts": [
            ["true", row["true"]],
            ["predicted", row["predicted"]],
            ["calibrated probability", row["probability"]],
            ["known", row["known"]],
            ["novelty", row["novelty"]],
            ["split", row["split"]],
        ],
    }


def mistake_cards(rows):
    return [model_card(row) for row in rows if row["true"] != row["predicted"]]


def unknown_cards(rows):
    rejected = [row for row in rows if row["known"] == "False"]
    return [model_card(row) for row in sorted(rejected, key=lambda row: -float(row["novelty"]))]


def to_label_cards(rows):
    """The select stage's batch: a pool photo each, its suggested class preselected."""
    return [
        {
            "key": pool_id(row["path"]),
            "pool": True,
            "photos": [{"path": pool_id(row["path"]), "split": "pool", "class": "unlabelled"}],
            "suggested": row["suggested"],
            "facts": [
                ["suggested", row["suggested"]],
                ["calibrated probability", row["probability"]],
                ["why", row["why"]],
            ],
        }
        for row in rows
    ]


@dataclass(frozen=True)
class Queue:
    name: str
    title: str
    table: str  # the file it is read from
    stage: str  # the stage that writes it
    cards: Callable  # rows of the table -> cards, in the order to review them


QUEUES = {
    queue.name: queue
    for queue in (
        Queue("labels", "Likely label errors", artifacts.LABEL_ISSUES_TABLE, "audit", label_cards),
        Queue(
            "duplicates", "Near-duplicates and leaks", artifacts.DUPLICATES_TABLE, "audit", duplicate_cards
        ),
        Queue("outliers", "Outliers", artifacts.OUTLIERS_TABLE, "audit", outlier_cards),
        Queue("mistakes", "Model mistakes", artifacts.MISTAKES_TABLE, "evaluate", mistake_cards),
        Queue(
            "unknown", "Rejected as none of the classes", artifacts.MISTAKES_TABLE, "evaluate", unknown_cards
        ),
        Queue("to_label", "To label", artifacts.TO_LABEL_TABLE, "select", to_label_cards),
    )
}


def read_queue(queue, root="."):
    """The queue's cards, or None when its stage has not run here yet."""
    table = Path(root) / queue.table
    return queue.cards(read_csv(table)) if table.is_file() else None


def listed_pool_photos(root="."):
    """The pool photos the to-label queue lists (the only pool photos the review serves)."""
    return {card["key"] for card in read_queue(QUEUES["to_label"], root) or ()}


def flagged_photos(root="."):
    """The photos the audit's lists name: a keep decision about one of them waits for the audit
    to run again (it leaves out what a person kept)."""
    return {
        listed["path"]
        for queue in QUEUES.values()
        if queue.stage == "audit"
        for card in read_queue(queue, root) or ()
        for listed in card["photos"]
    }
