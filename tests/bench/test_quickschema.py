"""The quick yes/no schema check never disagrees with jsonschema: on every fixture, and on thousands of results
and plans mutated the ways a broken harness or a hand edit would (keys dropped or added, types swapped, ints
written as floats or bools, numbers out of range, strings emptied, arrays grown or emptied)."""

from __future__ import annotations

import copy
import random

import pytest

from tests.bench._results import FIXTURES, fixture
from tests.bench.test_schema import _plan
from toolchain.bench import quickschema, schema

_REPLACEMENTS = [None, True, False, 0, 1, -1, 2**70, 6500000.0, 0.5, -1e300, "", "x", "../x", "a" * 300, [], [1],
                 ["s"], {}, {"k": 1}]


_FULL: dict[int, object] = {}


def _jsonschema_valid(obj, sch) -> bool:
    """jsonschema's verdict, with this tool's integer rule (an int, not a bool or a float like 6500000.0)."""
    import jsonschema

    if id(sch) not in _FULL:
        base = jsonschema.Draft202012Validator
        checker = base.TYPE_CHECKER.redefine("integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
        _FULL[id(sch)] = jsonschema.validators.extend(base, type_checker=checker)(sch)
    return _FULL[id(sch)].is_valid(obj)


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def _mutate(obj, rng: random.Random):
    obj = copy.deepcopy(obj)
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        *parent_path, last = rng.choice(paths)
        parent = obj
        for k in parent_path:
            parent = parent[k]
        r = rng.random()
        if r < 0.15 and isinstance(parent, dict):
            del parent[last]
        elif r < 0.25 and isinstance(parent, dict):
            parent[rng.choice(["extra", "notes", "_x"])] = 1
        elif r < 0.35 and isinstance(parent[last], list):
            parent[last] = parent[last] * rng.choice((0, 2, 40))
        elif r < 0.45 and isinstance(parent[last], (int, float)) and not isinstance(parent[last], bool):
            parent[last] = rng.choice((float(parent[last]), -parent[last], parent[last] * 10**12, True))
        else:
            parent[last] = copy.deepcopy(rng.choice(_REPLACEMENTS))
    return obj


@pytest.mark.parametrize("sch", ["results", "plan"])
def test_schemas_are_fully_supported(sch):
    assert quickschema.supports(schema.RESULTS_SCHEMA if sch == "results" else schema.PLAN_SCHEMA)


def test_quick_check_agrees_with_jsonschema_on_fixtures_and_mutations():
    rng = random.Random(1234)
    bases = [(fixture(p.stem), schema.RESULTS_SCHEMA) for p in sorted(FIXTURES.glob("*.json"))]
    bases.append((_plan(), schema.PLAN_SCHEMA))
    seen = {True: 0, False: 0}
    for base, sch in bases:
        cases = [base] + [_mutate(base, rng) for _ in range(250)]
        for obj in cases:
            quick, full = quickschema.is_valid(obj, sch), _jsonschema_valid(obj, sch)
            assert quick == full, f"quick={quick} jsonschema={full} on {obj!r}"[:2000]
            seen[full] += 1
    assert seen[True] > 50 and seen[False] > 700  # both verdicts exercised


def test_an_unsupported_keyword_falls_back_to_jsonschema():
    assert not quickschema.supports({"type": "object", "properties": {"a": {"multipleOf": 2}}})
    assert not quickschema.supports({"$ref": "#/x"})
    assert quickschema.supports({"type": ["integer", "null"], "minimum": 0})
