"""Each photo's nearest neighbours by cosine similarity of its cached features.

Exact, in row blocks: all pairs cost N^2 dot products, a few seconds for 10^4 photos on
two cores and minutes for 10^5 (benchmarks/bench_audit.py). Beyond that, an approximate
index (faiss, or hnswlib) would give the same top-k lists; this is the one function to swap.
"""

import numpy as np

BLOCK_ROWS = 1024  # rows compared at once: BLOCK_ROWS x N similarities in memory


def unit_rows(features):
    features = np.asarray(features, np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def nearest_neighbours(features, k):
    """(indices, similarities), both N x k: each row's k most similar other rows, most similar first."""
    unit = unit_rows(features)
    count = len(unit)
    k = min(k, count - 1)
    indices = np.empty((count, k), np.int64)
    similarities = np.empty((count, k), np.float32)
    for start in range(0, count, BLOCK_ROWS):
        block = unit[start : start + BLOCK_ROWS] @ unit.T
        rows = np.arange(len(block))
        block[rows, start + rows] = -np.inf  # a photo is not its own neighbour
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_similarities = np.take_along_axis(block, top, axis=1)
        # Ties broken by index, so the lists do not depend on argpartition's internals.
        order = np.lexsort((top, -top_similarities), axis=1)
        indices[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
        similarities[start : start + len(block)] = np.take_along_axis(top_similarities, order, axis=1)
    return indices, similarities
