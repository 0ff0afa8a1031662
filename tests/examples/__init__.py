"""Tests of examples/ (a package, so that conftest.py's package-scoped fixtures end with it)."""
