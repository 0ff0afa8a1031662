// DatumView: the fields of one serialized Caffe Datum (docs/CAFFE.md §5: channels=1, height=2,
// width=3, data=4, label=5, float_data=6, encoded=7) read straight from its protobuf wire
// bytes, without copying the payload: `data` points into the caller's buffer (an LMDB read
// transaction's memory map), so raw pixels can be copied once, into the batch. Only the
// wire format is checked here; callers that find anything unusual (encoded images,
// float_data, bad bytes) hand the record to the general Python path, which names the source
// and key in its errors. Tests: tests/data/test_datum_batch.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace caffeonspark {

struct DatumView {
  int32_t channels = 0;
  int32_t height = 0;
  int32_t width = 0;
  const uint8_t* data = nullptr;  // into the parsed buffer; null when the field is absent
  size_t data_size = 0;
  int32_t label = 0;
  size_t float_count = 0;  // float_data values (packed or not)
  bool encoded = false;
};

// Reads `size` bytes of a serialized Datum into `view` (fields not present keep their
// defaults; a repeated scalar keeps its last value, as protobuf does). False with `error`
// set when the bytes are not well-formed protobuf.
bool ParseDatum(const uint8_t* bytes, size_t size, DatumView* view, std::string* error);

}  // namespace caffeonspark
