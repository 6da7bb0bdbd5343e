"""Likely label errors: out-of-sample class probabilities, then confident learning.

The probabilities come from k-fold cross-validation of a linear softmax classifier on the
cached features (the head's model: one dense layer on the pooled features), fitted to
convergence by scikit-learn in seconds: each photo is scored by a model that never saw it,
so a photo in the wrong folder cannot be memorised. cleanlab's find_label_issues (confident
learning: per-class thresholds from the model's own confidence) picks the photos whose folder
disagrees with a confident prediction, ranked by self-confidence (the probability of the given
class, lowest first).
"""

import numpy as np

from transfer.core.errors import PipelineError


def check_auditable(labels, class_names, folds):
    """A clear line when a class has too few photos for k-fold cross-validation."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(class_names))
    smallest = int(np.argmin(counts))
    if counts[smallest] < folds:
        raise PipelineError(
            f"too few photos to audit: class '{class_names[smallest]}' has {counts[smallest]} photos, "
            f"audit.folds = {folds} needs at least {folds} (add photos or lower audit.folds)"
        )


def out_of_sample_probabilities(features, labels, folds, seed, regularization):
    """N x K probabilities, each row from the fold model that did not train on that photo."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, np.float64)
    labels = np.asarray(labels, np.int64)
    classes = int(labels.max()) + 1
    probabilities = np.zeros((len(labels), classes))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, score_rows in splitter.split(features, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=2000))
        model.fit(features[fit_rows], labels[fit_rows])
        probabilities[np.ix_(score_rows, model.classes_)] = model.predict_proba(features[score_rows])
    return probabilities


def find_label_issues(labels, probabilities):
    """(indices of the likely label errors, most likely first; every photo's label quality in [0, 1])."""
    import cleanlab.filter
    import cleanlab.rank

    labels = np.asarray(labels, np.int64)
    ranked = cleanlab.filter.find_label_issues(
        labels, probabilities, return_indices_ranked_by="self_confidence", n_jobs=1
    )
    quality = cleanlab.rank.get_label_quality_scores(labels, probabilities, method="self_confidence")
    return np.asarray(ranked, np.int64), quality
