"""Test data: the generated file corpus (:mod:`tests.data.generate`)."""
