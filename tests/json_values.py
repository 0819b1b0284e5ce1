"""JSON values for property tests of what reads JSON: every kind of value, integers beyond
64 bits among them (where orjson and json differ), nested a few levels."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["json_values"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**60, max_value=2**70)
    | st.integers(min_value=-(2**70), max_value=-(2**60))
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
