"""Package marker: test modules import shared fixtures as `tests.<folder>.conftest`."""
