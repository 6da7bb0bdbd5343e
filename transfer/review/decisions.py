"""A review's decisions: what a request may ask (one 400 line for anything else), and what it
writes to data/exclusions.csv."""

import json

from transfer.data.exclusions import DROP, KEEP, Decision, update_exclusions
from transfer.data.pool import ID_PREFIX, update_labels
from transfer.review.guard import BadRequest, NotFound

# The reasons the page offers for a drop; a script may give any one line.
REASONS = ("none of the classes", "ambiguous", "duplicate")
MOST_DECISIONS, LONGEST_REASON = 1000, 200
FIELDS = {"path", "action", "reason"}


def known_photo(project, photo):
    """The photo's id if it is a prepared photo or a listed pool photo: looked up, never joined
    to a path."""
    if not isinstance(photo, str) or not project.is_photo(photo):
        raise NotFound(f"not a photo of this dataset: {str(photo)[:200]!r}")
    return photo


def parse_decisions(project, body, key):
    """{photo: (action or None, reason)} of a body {key: [{"path", "action", "reason"?}, ...]}."""
    try:
        wanted = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise BadRequest(f"the body is not JSON: {problem}") from None
    items = wanted.get(key) if isinstance(wanted, dict) else None
    if not isinstance(items, list) or not 0 < len(items) <= MOST_DECISIONS:
        raise BadRequest(f'the body must be {{"{key}": [1 to {MOST_DECISIONS} objects]}}')
    changes = {}
    for item in items:
        if not isinstance(item, dict) or not {"path", "action"} <= set(item) <= FIELDS:
            raise BadRequest('each decision is {"path": ..., "action": ..., "reason": ...}')
        photo, action, reason = known_photo(project, item["path"]), item["action"], item.get("reason", "")
        # A pool photo gets a class, or drop (none of the classes); there is nothing to keep.
        choices = (
            (DROP, *project.class_names)
            if project.is_unlabelled(photo)
            else (DROP, KEEP, *project.class_names)
        )
        if action is not None and action not in choices:
            raise BadRequest(
                f"action must be one of {', '.join(choices)} or null (no decision): {action!r}"[:300]
            )
        if not isinstance(reason, str) or len(reason) > LONGEST_REASON or set(reason) & {"\n", "\r"}:
            raise BadRequest(f"reason must be one line of at most {LONGEST_REASON} characters")
        if photo in changes:
            raise BadRequest(f"{photo} is decided twice in one request")
        changes[photo] = (action, reason)
    return changes


def effective_action(requested, current, shown_class):
    """What a decision writes. Keeping a photo and giving it the class it has now are one
    decision: `keep`, or, for a photo a person had moved to that class before, that move."""
    relabelled = current is not None and current.action == shown_class
    if requested in (KEEP, shown_class):
        return shown_class if relabelled else KEEP
    return requested


def decide(project, changes, undo=False):
    """Write the decisions: a pool photo's class to data/labels.csv, any other to
    data/exclusions.csv with the photo's content hash. Returns (written, previous), each
    {photo: Decision or None}. undo: write each line as given (an earlier answer's `previous`).
    Blocks on the folder locks and the rewrites: the server runs it in a thread."""
    labels = {photo: change for photo, change in changes.items() if project.is_unlabelled(photo)}
    written, previous = {}, {}
    if labels:
        before = update_labels(
            {photo[len(ID_PREFIX) :]: action for photo, (action, _) in labels.items()}, project.labels
        )
        written |= {photo: action and Decision(action) for photo, (action, _) in labels.items()}
        previous |= {ID_PREFIX + path: label and Decision(label) for path, label in before.items()}
    others = {photo: change for photo, change in changes.items() if photo not in labels}
    if others:
        more_written, more_previous = decide_exclusions(project, others, undo)
        written |= more_written
        previous |= more_previous
    return written, previous


def decide_exclusions(project, changes, undo):
    current = project.decisions()
    written = {}
    for photo, (action, reason) in changes.items():
        if action is None:
            written[photo] = None
            continue
        if not undo:
            shown = project.class_names[project.photos[photo][0]]
            action = effective_action(action, current.get(photo), shown)
        written[photo] = Decision(action, reason, project.content_hash(photo))
    return written, update_exclusions(written, project.exclusions)
