"""The engine: an effect-handler probabilistic programming language on PyTorch with Pyro's API."""
