"""The select stage's two tables: metrics/to_label.csv (the batch to label, best first) and
metrics/to_label_unknown.csv (the pool photos the novelty check rejects, most novel first)."""

TO_LABEL_COLUMNS = ("rank", "path", "suggested", "probability", "known", "novelty", "why")
UNKNOWN_COLUMNS = ("path", "suggested", "probability", "novelty")
