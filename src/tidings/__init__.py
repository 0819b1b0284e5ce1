"""tidings: what became of every message a business sent."""

__version__ = "0.1.0"
