"""Test helpers that are not fixtures: servers the tests start, agents and tools they load."""
