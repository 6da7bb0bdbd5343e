"""Using a model: `transfer predict` on files, the SavedModel's in-graph decoding, and the
export stage's formats (export/, one row each).
"""
