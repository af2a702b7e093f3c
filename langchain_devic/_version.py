"""The package version, kept in one place for hatchling and __init__."""

__version__ = "0.1.0"
