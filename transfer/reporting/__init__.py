"""What the evaluate stage reports: metrics and curves, the novelty figures, the figures,
the Markdown report of a run, and the offline `dvc plots` page.
"""
