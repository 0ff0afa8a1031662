"""The command line as a person meets it (a package, so that test_errors.py here and
tests/test_errors.py do not clash under pytest's default import mode)."""
