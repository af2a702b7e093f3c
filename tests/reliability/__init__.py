"""Reliability tests: ChatDevic under load and injected faults, over loopback HTTP."""
