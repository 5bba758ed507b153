"""Pyro's ``pyro.distributions.testing``: distributions for tests and teaching (see
:mod:`engine.distributions.testing.fakes`)."""
