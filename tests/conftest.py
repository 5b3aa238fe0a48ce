"""Shared pytest configuration for the datastory test suite."""

pytest_plugins = ["tests.postgres"]
