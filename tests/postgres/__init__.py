"""Package marker: the worker process runs as `python -m tests.postgres._worker`."""
