"""The networks: the backbone registry, the base, head, classifier and their preprocessing
layers, EfficientNet-Lite's weights from PyTorch state, and safe loading of .keras files.
"""
