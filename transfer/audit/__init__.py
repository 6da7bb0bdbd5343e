"""The data audit: near-duplicates and split leaks, likely label errors, outliers, and its figures."""
