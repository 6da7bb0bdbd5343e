"""Labelling what matters next: a pool of unlabelled photos (data.unlabeled), scored by the
trained model and ranked for a person to label (metrics/to_label.csv), by one of the
strategies of `strategies`."""
