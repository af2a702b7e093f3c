"""Hostile-server tests: the client's promises held against a peer that misbehaves."""
