"""Opening and running a trained model: the bundle (what a model is, read once), the deployed
network (classifier, temperature and novelty score in one graph), the LiteRT conversion
cache, and the runners (Keras or LiteRT).
"""
