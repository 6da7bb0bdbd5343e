"""A review's decisions: what a request may ask (one 400 line for anything else), and what it
writes to data/exclusions.csv."""

import json

from transfer.data.exclusions import DROP, KEEP, Decision, update_exclusions
from transfer.review.guard import BadRequest, NotFound

# The reasons the page offers for a drop; a script may give any one line.
REASONS = ("none of the classes", "ambiguous", "duplicate")
MOST_DECISIONS, LONGEST_REASON = 1000, 200
FIELDS = {"path", "action", "reason"}


def known_photo(project, photo):
    """The photo's id if it is one of the prepared photos: looked up, never joined to a path."""
    if not isinstance(photo, str) or photo not in project.photos:
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
    choices = (DROP, KEEP, *project.class_names)
    changes = {}
    for item in items:
        if not isinstance(item, dict) or not {"path", "action"} <= set(item) <= FIELDS:
            raise BadRequest('each decision is {"path": ..., "action": ..., "reason": ...}')
        photo, action, reason = known_photo(project, item["path"]), item["action"], item.get("reason", "")
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
    """Write the decisions with each photo's content hash; returns (written, previous), each
    {photo: Decision or None}. undo: write each line as given (an earlier answer's `previous`).
    Blocks on the folder lock and the rewrite: the server runs it in a thread."""
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
