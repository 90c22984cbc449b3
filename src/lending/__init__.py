"""lending: software for a library of things."""

__version__ = "0.1.0"
