"""caffeonspark: distributed Caffe deep learning inside Spark applications."""
