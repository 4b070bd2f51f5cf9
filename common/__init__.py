"""Helpers every oneshot service shares: config, database, auth, HTTP plumbing, logs, metrics."""
