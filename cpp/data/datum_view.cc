#include "data/datum_view.h"

namespace caffeonspark {

namespace {

// Protobuf wire types.
constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

class Reader {
 public:
  Reader(const uint8_t* p, size_t size) : p_(p), end_(p + size) {}
  bool done() const { return p_ == end_; }
  const uint8_t* position() const { return p_; }

  bool Varint(uint64_t* value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t byte = *p_++;
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) {
        *value = result;
        return true;
      }
    }
    return false;  // more than 10 bytes
  }

  bool Skip(size_t bytes) {
    if (static_cast<size_t>(end_ - p_) < bytes) return false;
    p_ += bytes;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Whether a known Datum field may come with this wire type (protobuf would reject or
// reinterpret anything else; unknown fields are skipped).
bool WireFits(uint64_t field, int wire) {
  if (field > 7) return true;
  if (field == 4) return wire == kLengthDelimited;
  if (field == 6) return wire == kFixed32 || wire == kLengthDelimited;  // unpacked or packed
  return wire == kVarint;
}

}  // namespace

bool ParseDatum(const uint8_t* bytes, size_t size, DatumView* view, std::string* error) {
  *view = DatumView();
  Reader in(bytes, size);
  while (!in.done()) {
    uint64_t tag = 0;
    if (!in.Varint(&tag) || (tag >> 3) == 0) {
      *error = "bad field tag";
      return false;
    }
    const uint64_t field = tag >> 3;
    const int wire = static_cast<int>(tag & 7);
    if (!WireFits(field, wire)) {
      *error = "field " + std::to_string(field) + " has wire type " + std::to_string(wire);
      return false;
    }
    uint64_t value = 0;
    switch (wire) {
      case kVarint:
        if (!in.Varint(&value)) {
          *error = "truncated varint";
          return false;
        }
        // int32 fields keep the low 32 bits of the (sign-extended) varint, as protobuf does.
        if (field == 1) view->channels = static_cast<int32_t>(value);
        if (field == 2) view->height = static_cast<int32_t>(value);
        if (field == 3) view->width = static_cast<int32_t>(value);
        if (field == 5) view->label = static_cast<int32_t>(value);
        if (field == 7) view->encoded = value != 0;
        break;
      case kFixed64:
        if (!in.Skip(8)) {
          *error = "truncated fixed64";
          return false;
        }
        break;
      case kFixed32:
        if (!in.Skip(4)) {
          *error = "truncated fixed32";
          return false;
        }
        if (field == 6) ++view->float_count;
        break;
      case kLengthDelimited: {
        if (!in.Varint(&value)) {
          *error = "truncated length";
          return false;
        }
        const uint8_t* start = in.position();
        if (!in.Skip(static_cast<size_t>(value))) {
          *error = "a field runs past the end of the record";
          return false;
        }
        if (field == 4) {
          view->data = start;
          view->data_size = static_cast<size_t>(value);
        } else if (field == 6) {
          if (value % 4) {
            *error = "packed float_data is not a whole number of floats";
            return false;
          }
          view->float_count += static_cast<size_t>(value / 4);
        }
        break;
      }
      default:  // groups (3, 4) and reserved wire types never appear in a Datum
        *error = "unsupported wire type " + std::to_string(wire);
        return false;
    }
  }
  return true;
}

}  // namespace caffeonspark
