"""After fine-tuning, before any decision: the temperature that calibrates the probabilities
and the novelty score (a registry of methods) whose threshold flags photos of no class.
"""
