"""Data sets and converters: IDX files, the generated MNIST-like digits, Datum LMDBs.

Tests: tests/data/.
"""
