"""Training both phases: the shared recipe (optimizer, schedule, fit, early stopping), the
tf.data pipelines, fine-tuning's frozen-bottom cache, and the DVCLive epoch log.
"""
