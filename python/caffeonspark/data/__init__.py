"""Data sets, converters, decoding and sources (docs/DATA.md).

- idx, digits, convert_mnist: MNIST IDX files and the generated MNIST-like set;
- lmdb_writer, datums, image_codec: Datum LMDBs, Datum <-> image, OpenCV decode / resize;
- convert_imageset, convert_cifar, image_mean, parquet_io, seqfile, convert_seq, progress:
  Caffe's and CaffeOnSpark's converters (CLI verbs in caffeonspark/cli_data.py);
- sources/: partitioned sources with epochs (LMDB, Parquet, SequenceFile, NumPy);
- native_queue, lmdb_feeder, source_feeder, feeders: feeding the engine's data layers.

Tests: tests/data/, tests/layers/test_data.py, tests/layers/test_memory_data*.py.
"""
