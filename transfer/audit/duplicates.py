"""Exact and near-duplicate photos, grouped.

Exact: identical decoded pixels at data.image_size (a SHA-1 of the prepared pixels).
Near: two steps. Candidates are each photo's nearest neighbours by cosine similarity of the
cached features (cheap; robust to re-encoding and resizing, but a 10% crop can fall to 0.75
while distinct photos of one class reach 0.85 at 100 px). Each candidate pair is then
confirmed on the pixels: the correlation of small grayscale thumbnails, the best over crops
of either photo (scales 1 to 0.85, offsets on a 5 x 5 grid), so a crop lines up with its
original; zero mean and unit norm make it blind to brightness and contrast changes. Pairs at
or above the threshold are joined into groups (union-find), so a burst of copies is one group.
"""

import hashlib

import numpy as np
from PIL import Image

THUMBNAIL = 24  # pixels per side of the compared thumbnails
CROP_SCALES = (1.0, 0.95, 0.9, 0.85)
CROP_OFFSETS = 5  # positions per axis of each crop (corners, edges, middle)


def pixel_digest(image):
    return hashlib.sha1(np.ascontiguousarray(image, np.uint8).tobytes()).hexdigest()


def thumbnail(image):
    """A THUMBNAIL^2 grayscale vector with zero mean and unit norm."""
    gray = Image.fromarray(np.asarray(image, np.uint8)).convert("L")
    vector = np.asarray(gray.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX), np.float32).ravel()
    vector -= vector.mean()
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


def crop_thumbnails(image):
    """Thumbnails of the image's crops at every scale and offset (the whole image first)."""
    image = np.asarray(image, np.uint8)
    size = image.shape[0]
    crops = []
    for scale in CROP_SCALES:
        width = round(size * scale)
        offsets = sorted({round(step * (size - width) / (CROP_OFFSETS - 1)) for step in range(CROP_OFFSETS)})
        crops += [thumbnail(image[y : y + width, x : x + width]) for y in offsets for x in offsets]
    return np.stack(crops)


def candidate_pairs(neighbour_indices, neighbour_similarities, threshold):
    """{(i, j): cosine} for i < j, every neighbour pair at or above the threshold."""
    pairs = {}
    rows, columns = np.nonzero(neighbour_similarities >= threshold)
    for row, column in zip(rows, columns):
        other = int(neighbour_indices[row, column])
        pairs[(min(row, other), max(row, other))] = float(neighbour_similarities[row, column])
    return pairs


class PixelMatcher:
    """Pixel similarity of candidate pairs, fed one photo at a time in index order.

    Holds one thumbnail per photo (THUMBNAIL^2 floats) and the pairs; each photo's crops are
    made when it is fed and compared with its partners' whole thumbnails, so a pair's score,
    the better of the two directions, is complete once both of its photos have been fed.
    """

    def __init__(self, thumbnails, pairs):
        self.thumbnails = np.asarray(thumbnails, np.float32)
        self.partners = {}
        for first, second in pairs:
            self.partners.setdefault(first, []).append(second)
            self.partners.setdefault(second, []).append(first)
        self.scores = dict.fromkeys(pairs, -1.0)

    def feed(self, index, image):
        partners = self.partners.get(index)
        if not partners:
            return
        best = (crop_thumbnails(image) @ self.thumbnails[partners].T).max(axis=0)
        for partner, score in zip(partners, best):
            pair = (min(index, partner), max(index, partner))
            self.scores[pair] = max(self.scores[pair], float(score))


def groups_of(count, linked_pairs):
    """Connected components of size >= 2 (union-find), each sorted, largest first then by index."""
    parent = list(range(count))

    def root(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for first, second in linked_pairs:
        parent[root(first)] = root(second)
    components = {}
    for node in range(count):
        components.setdefault(root(node), []).append(node)
    groups = [members for members in components.values() if len(members) > 1]
    return sorted(groups, key=lambda members: (-len(members), members[0]))


def exact_pairs(digests):
    """Pairs (first, other) of photos with identical pixels: each copy linked to the first."""
    first_seen, pairs = {}, []
    for index, digest in enumerate(digests):
        if digest in first_seen:
            pairs.append((first_seen[digest], index))
        else:
            first_seen[digest] = index
    return pairs
