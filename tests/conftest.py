"""Shared fixtures: every test starts with an empty param store, fixed seeds and validation on."""

import pytest

import engine


@pytest.fixture(autouse=True)
def fresh_engine_state():
    engine.clear_param_store()
    engine.set_rng_seed(0)
    engine.enable_validation(True)
    yield
    engine.clear_param_store()
    engine.enable_validation(True)
