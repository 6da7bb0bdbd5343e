"""The audit's two figures: near-duplicate groups, and the likeliest label errors."""

from transfer.audit.findings import each_image, label_issue_rows
from transfer.reporting.figures import plot_grid


def images_of_rows(prepared_dir, rows):
    wanted = set(rows)
    # Copies: a view would keep its whole shard in memory.
    found = {index: image.copy() for index, image in each_image(prepared_dir) if index in wanted}
    return [found[row] for row in rows]


GROUPS_SHOWN, MEMBERS_SHOWN = 6, 4  # the duplicates grid: one row per group
ISSUES_SHOWN = 16


def plot_duplicates(result, prepared_dir, path):
    photos, cells, captions = result.photos, [], []
    for number, members in enumerate(result.groups[:GROUPS_SHOWN], start=1):
        shown = members[:MEMBERS_SHOWN]
        cells += shown + [None] * (MEMBERS_SHOWN - len(shown))
        captions += [
            f"group {number} ({len(members)}), {photos.splits[row]}\n"
            f"{result.class_names[photos.labels[row]]}, similarity {result.similarity[row]:.3f}"
            for row in shown
        ] + [""] * (MEMBERS_SHOWN - len(shown))
    images = images_of_rows(prepared_dir, [row for row in cells if row is not None])
    placed = iter(images)
    grid = [None if row is None else next(placed) for row in cells]
    plot_grid(grid, captions, path, "No duplicate photos found", columns=MEMBERS_SHOWN)


def plot_label_issues(result, prepared_dir, path):
    rows = label_issue_rows(result)[:ISSUES_SHOWN]
    captions = [
        f"{row['split']}: given {row['given']}\n"
        f"suggested {row['suggested']} ({row['suggested_probability']:.2f})"
        for row in rows
    ]
    shown = result.issues[: len(rows)].tolist()
    plot_grid(images_of_rows(prepared_dir, shown), captions, path, "No likely label errors found")
