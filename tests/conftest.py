"""Shared test set-up.

* Hypothesis profiles: ``ci`` (the default: 100 derandomized examples, no
  deadline) and ``long`` (20000 examples); choose with
  ``pytest --hypothesis-profile=long``.
* Every module any test runs through ``rayzor.interpret`` is first checked for
  a faithful text round trip: ``parse(str(m))`` prints identically, compares
  equal, and verifies whenever ``m`` does. Tests must call
  ``rayzor.interpret`` (never ``from rayzor import interpret``) so that the
  wrapper installed here sees every call.
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

import rayzor

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=100,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=20000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The hypothesis pytest plugin loads --hypothesis-profile after conftest is
# imported, so this is only the default.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_real_interpret = rayzor.interpret

#: How many modules the wrapper round-tripped (tests may assert it moved).
ROUND_TRIPS = {"count": 0}


def check_round_trip(module: rayzor.Module) -> None:
    """Assert that the text form of a verified `module` parses back to an equal module."""
    text = str(module)
    again = rayzor.parse(text)
    assert str(again) == text, f"print(parse(print(m))) differs from print(m):\n{text}\n---\n{again}"
    assert again == module
    # What verifies must still verify after a trip through text.
    again.verify()
    ROUND_TRIPS["count"] += 1


def _checked_interpret(module, name, *args, **kwargs):
    try:
        module.verify()
    except rayzor.RayzorError:
        # Not runnable: let the real interpreter raise what it raises.
        return _real_interpret(module, name, *args, **kwargs)
    check_round_trip(module)
    return _real_interpret(module, name, *args, **kwargs)


@pytest.fixture(autouse=True)
def _round_trip_every_interpreted_module(monkeypatch):
    monkeypatch.setattr(rayzor, "interpret", _checked_interpret)
    yield
