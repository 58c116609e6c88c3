"""JSON from outside is refused by depth before Python's recursive parser sees it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicedesk_contracts.codec import MAX_JSON_DEPTH, TooDeep, _nesting_depth, load_json

# Strings full of what a careless scan would take for structure.
TRICKY_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\ aø\u2028'), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@given(JSON_VALUES, st.booleans())
def test_the_depth_is_that_of_the_arrays_and_objects_whatever_the_strings_hold(
    value: Any, ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _nesting_depth(text, bound=0) == depth(value)
    assert load_json(text, max_depth=depth(value)) == value
    if depth(value) > 0:
        with pytest.raises(TooDeep):
            load_json(text, max_depth=depth(value) - 1)


def test_the_limit_is_inclusive_and_named_in_the_error() -> None:
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert _nesting_depth(nested, MAX_JSON_DEPTH) == MAX_JSON_DEPTH
    assert depth(load_json(nested)) == MAX_JSON_DEPTH
    with pytest.raises(TooDeep, match=f"deeper than {MAX_JSON_DEPTH} levels"):
        load_json(b"[" + nested + b"]")


@contextmanager
def spare_frames(count: int) -> Iterator[None]:
    """Only `count` frames of stack left above this one, as deep inside a busy service."""
    limit = sys.getrecursionlimit()
    here = len_of_stack()
    sys.setrecursionlimit(here + count)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def len_of_stack() -> int:
    frame, frames = sys._getframe(), 0
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    return frames


@pytest.mark.parametrize(
    "hostile",
    [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'["\\"\\\\", ' + b"[" * 10_000,  # after a string of escapes
    ],
)
def test_a_deep_text_is_refused_without_the_parser_recursing(hostile: bytes) -> None:
    # The parser recursing to the interpreter's limit left no stack for a finalizer that a
    # garbage collection ran meanwhile: it failed as an unraisable RecursionError.
    with spare_frames(MAX_JSON_DEPTH + 30), pytest.raises(TooDeep):
        load_json(hostile)


def test_a_deep_text_inside_a_string_is_only_text() -> None:
    text = json.dumps({"body": "[" * 100_000}).encode()
    assert load_json(text) == {"body": "[" * 100_000}
