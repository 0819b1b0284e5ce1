"""The JSON API under `/v1`: read models over the store, plus message registration."""
