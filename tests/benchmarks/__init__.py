"""On-demand benchmarks for langchain-devic (not part of the default test run).

Run all five from the repository root, with the `bench` extra installed::

    python -m tests.benchmarks            # prints seven tables, writes RESULTS.md
    python -m tests.benchmarks --quick    # fewer iterations, for a smoke run

Each benchmark is also a script of its own (`python -m
tests.benchmarks.bench_overhead`, `bench_fanout`, `bench_import`,
`bench_memory`, `bench_runs`). Every request goes to an in-process transport,
to the emulator's server on 127.0.0.1, or to `fast_server.py` (its own process
on 127.0.0.1): nothing leaves the machine. `lean_model.py` holds the reference
models benchmark 1 compares against.
"""
