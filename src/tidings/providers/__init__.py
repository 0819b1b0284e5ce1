"""Provider adapters: one package per provider, each with a pure `webhook` module."""
