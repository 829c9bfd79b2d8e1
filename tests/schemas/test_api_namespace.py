"""`thresher.schemas.api` gathers every model of the HTTP contract: none is left out."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from thresher.schemas import agent, api, farm, jobs, sites


def test_every_model_is_in_the_api_namespace() -> None:
    defined = {
        name
        for module in (jobs, agent, farm, sites)
        for name, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, BaseModel) and value.__module__ == module.__name__
    }
    assert defined, "no models found: the modules moved?"
    assert defined <= set(api.__all__)
    assert all(isinstance(getattr(api, name), type) for name in api.__all__)
