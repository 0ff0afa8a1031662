// caffeonspark._engine data: BatchQueue (push/pop copy the arrays and block with the GIL
// released; push_tops feeds CoSData's multi-top batches), the queues of a net's queue-fed
// data layers (MemoryData, Data, CoSData, ...) and of HDF5Output, the DataTransformer on its
// own (tests, tools),
// and parse_raw_datums (a list of serialized raw Datums -> one uint8 batch, one call per
// batch, GIL released). Python wrappers: python/caffeonspark/data/.
// Tests: tests/data/test_batch_queue.py, tests/data/test_transformer.py,
// tests/data/test_datum_batch.py.
#include <algorithm>
#include <cstring>
#include <optional>

#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "bindings/gil_release.h"
#include "core/checked_size.h"
#include "data/batch_queue.h"
#include "data/datum_view.h"
#include "data/transformer.h"
#include "layers/hdf5_data.h"
#include "layers/queue_data.h"
#include "net/net.h"

namespace caffeonspark::py_bind {

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style>;

// The feeder's error, rebuilt as the engine exception of the same taxonomy name (anything
// else becomes IoError: the data source failed).
std::exception_ptr MakeError(const std::string& kind, const std::string& message) {
#define COS_MAKE_ERROR_NAMED(Name, Base) \
  if (kind == #Name) return std::make_exception_ptr(Name(message));
  COS_ERROR_TYPES(COS_MAKE_ERROR_NAMED)
#undef COS_MAKE_ERROR_NAMED
  return std::make_exception_ptr(IoError(message));
}

std::vector<int> ShapeOf(const py::array& a) {
  std::vector<int> shape;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) shape.push_back(static_cast<int>(a.shape(i)));
  return shape;
}

// Any array-like as an ndarray (lists, memoryviews...).
py::array AsArray(const py::object& value) {
  py::array array = py::array::ensure(value);
  if (!array) throw py::error_already_set();
  return array;
}

bool Push(BatchQueue& queue, const py::object& data_object, const py::object& labels,
          std::optional<double> timeout) {
  py::array data = AsArray(data_object);
  COS_CHECK(data.ndim() == 4, ShapeError, queue.owner(),
            "pushed data must be 4-D (N, C, H, W), got ", data.ndim(), " axes");
  const bool raw = data.dtype().is(py::dtype::of<uint8_t>());
  py::array items = raw ? py::array(ByteArray(data)) : py::array(FloatArray(data));
  FloatArray label_values(labels);
  COS_CHECK(label_values.ndim() == 1 && label_values.shape(0) == data.shape(0), ShapeError,
            queue.owner(), "pushed labels must be 1-D with one label per item (",
            data.shape(0), "), got ", label_values.size(), " values in ", label_values.ndim(),
            " axes");
  Batch batch;
  batch.shape = ShapeOf(items);
  batch.raw = raw;
  const size_t count = static_cast<size_t>(items.size());
  const void* source = items.data();
  BatchQueue::PushResult result;
  {
    // `items` and `label_values` stay referenced, so their buffers outlive the copy.
    GilRelease release;
    if (raw) {
      const auto* p = static_cast<const uint8_t*>(source);
      batch.pixels.assign(p, p + count);
    } else {
      const auto* p = static_cast<const float*>(source);
      batch.values.assign(p, p + count);
    }
    batch.labels.assign(label_values.data(), label_values.data() + label_values.size());
    result = queue.Push(std::move(batch), timeout.value_or(-1.0));
  }
  COS_CHECK(result != BatchQueue::PushResult::kTimedOut, IoError, queue.owner(),
            "the data queue stayed full for ", *timeout, " seconds (is the net running?)");
  return result == BatchQueue::PushResult::kPushed;
}

// One (N, C, H, W) array per top, uint8 (raw images) or float32, as one multi-top batch.
bool PushTops(BatchQueue& queue, const py::sequence& arrays, std::optional<double> timeout) {
  Batch batch;
  std::vector<py::array> held;  // keeps the buffers alive while the GIL is released
  for (size_t i = 0; i < arrays.size(); ++i) {
    py::array data = AsArray(arrays[i]);
    COS_CHECK(data.ndim() == 4, ShapeError, queue.owner(), "pushed array ", i,
              " must be 4-D (N, C, H, W), got ", data.ndim(), " axes");
    const bool raw = data.dtype().is(py::dtype::of<uint8_t>());
    held.push_back(raw ? py::array(ByteArray(data)) : py::array(FloatArray(data)));
    Batch top;
    top.shape = ShapeOf(held.back());
    top.raw = raw;
    batch.tops.push_back(std::move(top));
  }
  batch.shape = {batch.tops.empty() ? 0 : batch.tops[0].num()};
  BatchQueue::PushResult result;
  {
    GilRelease release;
    for (size_t i = 0; i < held.size(); ++i) {
      const size_t count = static_cast<size_t>(held[i].size());
      if (batch.tops[i].raw) {
        const auto* p = static_cast<const uint8_t*>(held[i].data());
        batch.tops[i].pixels.assign(p, p + count);
      } else {
        const auto* p = static_cast<const float*>(held[i].data());
        batch.tops[i].values.assign(p, p + count);
      }
    }
    result = queue.Push(std::move(batch), timeout.value_or(-1.0));
  }
  COS_CHECK(result != BatchQueue::PushResult::kTimedOut, IoError, queue.owner(),
            "the data queue stayed full for ", *timeout, " seconds (is the net running?)");
  return result == BatchQueue::PushResult::kPushed;
}

py::array BatchArray(const Batch& batch) {
  std::vector<py::ssize_t> shape(batch.shape.begin(), batch.shape.end());
  return batch.raw ? py::array(py::array_t<uint8_t>(shape, batch.pixels.data()))
                   : py::array(py::array_t<float>(shape, batch.float_data()));
}

py::tuple Pop(BatchQueue& queue, std::optional<double> timeout) {
  Batch batch;
  {
    GilRelease release;
    batch = timeout ? queue.Pop(*timeout) : queue.Pop();
  }
  if (!batch.tops.empty()) {
    py::list tops;
    for (const Batch& top : batch.tops) tops.append(BatchArray(top));
    return py::make_tuple(py::tuple(tops), py::none());
  }
  py::array_t<float> labels(static_cast<py::ssize_t>(batch.labels.size()), batch.labels.data());
  return py::make_tuple(BatchArray(batch), labels);
}

QueueDataLayer& QueueLayer(Net& net, int index) {
  COS_CHECK(index >= 0 && index < net.num_layers(), ConfigError, "net '", net.name(),
            "' has no layer ", index);
  auto* layer = dynamic_cast<QueueDataLayer*>(&net.layer(index));
  COS_CHECK(layer, ConfigError, net.layer(index).where(),
            "is not a queue-fed data layer (MemoryData, Data or CoSData)");
  return *layer;
}

py::tuple Transform(DataTransformer& transformer, const py::object& data_object) {
  py::array data = AsArray(data_object);
  COS_CHECK(data.ndim() == 4, ShapeError, "transform needs 4-D items (N, C, H, W), got ",
            data.ndim(), " axes");
  const bool raw = data.dtype().is(py::dtype::of<uint8_t>());
  py::array items = raw ? py::array(ByteArray(data)) : py::array(FloatArray(data));
  const std::vector<int> in = ShapeOf(items);
  const std::vector<int> item = transformer.OutputShape(in[1], in[2], in[3]);
  py::array_t<float> out(std::vector<py::ssize_t>{in[0], item[0], item[1], item[2]});
  std::vector<TransformChoice> choices;
  const void* source = items.data();
  float* target = out.mutable_data();
  {
    GilRelease release;
    if (raw) {
      transformer.Transform(static_cast<const uint8_t*>(source), in[0], in[1], in[2], in[3],
                            target, &choices);
    } else {
      transformer.Transform(static_cast<const float*>(source), in[0], in[1], in[2], in[3],
                            target, &choices);
    }
  }
  py::list picked;
  for (const auto& c : choices) picked.append(py::make_tuple(c.h_off, c.w_off, c.mirror));
  return py::make_tuple(out, picked);
}

// (data uint8 (N, C, H, W), labels float32 (N,)) of N serialized raw Datums (any buffers:
// bytes, memoryviews into an LMDB map), or None when any record is not a plain raw Datum of
// one shape (`shape` when given): encoded, float_data, malformed, a size other than C*H*W.
// The caller then takes its general path, which reports bad records by key. Each record's
// pixels are copied once, straight into the batch, with the GIL released.
py::object ParseRawDatums(const py::sequence& values, std::optional<std::vector<int>> shape) {
  const size_t n = values.size();
  std::vector<py::buffer_info> buffers;
  buffers.reserve(n);
  for (const py::handle value : values) {
    if (!PyObject_CheckBuffer(value.ptr())) return py::none();
    buffers.push_back(py::reinterpret_borrow<py::buffer>(value).request());
    const py::buffer_info& info = buffers.back();
    if (info.ndim > 1 || (info.ndim == 1 && info.strides[0] != info.itemsize)) return py::none();
  }
  std::vector<DatumView> views(n);
  bool plain = n > 0;
  {
    GilRelease release;
    std::string error;
    for (size_t i = 0; i < n && plain; ++i) {
      const auto& info = buffers[i];
      DatumView& v = views[i];
      plain = ParseDatum(static_cast<const uint8_t*>(info.ptr),
                         static_cast<size_t>(info.size * info.itemsize), &v, &error) &&
              !v.encoded && v.data_size > 0 && v.channels > 0 && v.height > 0 && v.width > 0;
      // Checked: a wrapped c·h·w could equal a small data size and size a huge batch array.
      plain = plain && v.data_size == static_cast<size_t>(CheckedCount<FormatError>(
                                          std::vector<int64_t>{v.channels, v.height, v.width},
                                          Msg("parse_raw_datums: record ", i, " of the batch: "),
                                          "channels · height · width"));
      if (plain && !shape) shape = std::vector<int>{v.channels, v.height, v.width};
      plain = plain && (*shape)[0] == v.channels && (*shape)[1] == v.height &&
              (*shape)[2] == v.width;
    }
  }
  if (!plain) return py::none();
  const auto& s = *shape;
  py::array_t<uint8_t> data(std::vector<py::ssize_t>{static_cast<py::ssize_t>(n), s[0], s[1], s[2]});
  py::array_t<float> labels(static_cast<py::ssize_t>(n));
  uint8_t* out = data.mutable_data();
  float* label_out = labels.mutable_data();
  {
    GilRelease release;
    const size_t item = views[0].data_size;
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(out + i * item, views[i].data, item);
      label_out[i] = static_cast<float>(views[i].label);
    }
  }
  return py::make_tuple(data, labels);
}

// Per serialized Datum, one int64 row: (parsed, encoded, channels, height, width, label,
// data offset in the record (-1 without data), data size, float_data count); parsed = 0
// for malformed bytes (then the rest is 0). Lets a feeder decode encoded images straight
// from the records' memory without building protobuf objects. GIL released while scanning.
py::array_t<int64_t> ScanDatums(const py::sequence& values) {
  const size_t n = values.size();
  std::vector<py::buffer_info> buffers;
  buffers.reserve(n);
  for (const py::handle value : values) {
    buffers.push_back(py::reinterpret_borrow<py::buffer>(value).request());
    const py::buffer_info& info = buffers.back();
    COS_CHECK(info.ndim <= 1 && (info.ndim == 0 || info.strides[0] == info.itemsize), ShapeError,
              "scan_datums needs contiguous byte buffers");
  }
  constexpr int kColumns = 9;
  py::array_t<int64_t> out(std::vector<py::ssize_t>{static_cast<py::ssize_t>(n), kColumns});
  int64_t* rows = out.mutable_data();
  {
    GilRelease release;
    std::string error;
    DatumView v;
    for (size_t i = 0; i < n; ++i) {
      const auto* start = static_cast<const uint8_t*>(buffers[i].ptr);
      int64_t* row = rows + i * kColumns;
      std::fill(row, row + kColumns, 0);
      if (!ParseDatum(start, static_cast<size_t>(buffers[i].size * buffers[i].itemsize), &v,
                      &error)) {
        continue;
      }
      const int64_t fields[kColumns] = {1, v.encoded, v.channels, v.height, v.width, v.label,
                                        v.data ? v.data - start : -1,
                                        static_cast<int64_t>(v.data_size),
                                        static_cast<int64_t>(v.float_count)};
      std::copy(fields, fields + kColumns, row);
    }
  }
  return out;
}

}  // namespace

void BindData(py::module_& m) {
  py::class_<BatchQueue, std::shared_ptr<BatchQueue>>(m, "BatchQueue")
      .def(py::init<std::string, size_t, double>(), py::arg("name"), py::arg("capacity"),
           py::arg("timeout") = BatchQueue::kDefaultPopTimeout)
      .def("push", &Push, py::arg("data"), py::arg("labels"), py::arg("timeout") = py::none(),
           "Copy one batch in (uint8 (N,C,H,W) raw images or float data + N labels); blocks "
           "with the GIL released while full. False when the queue is closed.")
      .def("push_tops", &PushTops, py::arg("arrays"), py::arg("timeout") = py::none(),
           "Copy one multi-top batch in (CoSData): one (N, C, H, W) array per top, uint8 "
           "raw images or float data; blocks with the GIL released while full. False when "
           "the queue is closed.")
      .def("pop", &Pop, py::arg("timeout") = py::none(),
           "The next batch as (data, labels), or (tuple of per-top arrays, None) for a "
           "multi-top batch; blocks with the GIL released.")
      .def(
          "close",
          [](BatchQueue& q, const std::string& kind, const std::string& message) {
            q.Close(kind.empty() && message.empty() ? nullptr : MakeError(kind, message));
          },
          py::arg("kind") = "", py::arg("message") = "",
          "End the stream; with an error (taxonomy class name + message) consumers raise it "
          "once the queued batches are used up.")
      .def_property_readonly("name", &BatchQueue::owner)
      .def_property_readonly("closed", &BatchQueue::closed)
      .def_property_readonly("size", &BatchQueue::size)
      .def_property("capacity", &BatchQueue::capacity, &BatchQueue::set_capacity)
      .def_property("timeout", &BatchQueue::pop_timeout, &BatchQueue::set_pop_timeout)
      .def_property_readonly("wait_seconds", &BatchQueue::wait_seconds)
      .def_property_readonly("pops", &BatchQueue::pops)
      .def_property_readonly("blocked_pushes", &BatchQueue::blocked_pushes,
                             "Producers blocked in push right now (the queue is full).");

  m.def(
      "data_layer_queues",
      [](Net& net, int index) {
        QueueDataLayer& layer = QueueLayer(net, index);
        return py::make_tuple(layer.feed_queue(), layer.ready_queue());
      },
      py::arg("net"), py::arg("layer_index"),
      "(feed queue, ready queue) of a MemoryData, Data or CoSData layer: feeders push into "
      "the first, Forward pops the second (its timeout and wait statistics).");

  m.def(
      "output_layer_queue",
      [](Net& net, int index) {
        COS_CHECK(index >= 0 && index < net.num_layers(), ConfigError, "net '", net.name(),
                  "' has no layer ", index);
        auto* layer = dynamic_cast<HDF5OutputLayer*>(&net.layer(index));
        COS_CHECK(layer, ConfigError, net.layer(index).where(), "is not an HDF5Output layer");
        return layer->output_queue();
      },
      py::arg("net"), py::arg("layer_index"),
      "The queue an HDF5Output layer's Forward pushes (data, label) batches into; its "
      "writer thread pops them (python/caffeonspark/data/hdf5_feeder.py).");

  py::class_<DataTransformer>(m, "DataTransformer")
      .def(py::init([](const py::dict& param, bool train, uint32_t seed) {
             return std::make_unique<DataTransformer>(ToParams(param, "transform_param"), train,
                                                      "transform_param: ", seed);
           }),
           py::arg("transform_param"), py::arg("train"), py::arg("seed") = 0)
      .def("output_shape", &DataTransformer::OutputShape)
      .def("transform", &Transform, py::arg("data"),
           "(float32 (N, C, H', W'), [(h_off, w_off, mirrored) per item])");

  m.def("scan_datums", &ScanDatums, py::arg("values"),
        "int64 (N, 9): (parsed, encoded, channels, height, width, label, data offset or -1, "
        "data size, float_data count) of serialized Datums (bytes or memoryviews).");
  m.def("parse_raw_datums", &ParseRawDatums, py::arg("values"), py::arg("shape") = py::none(),
        "(uint8 (N, C, H, W), float32 labels) of serialized raw Datums (bytes or memoryviews), "
        "their pixels copied once with the GIL released; None when any record is not a raw "
        "Datum of one shape (`shape` (C, H, W) when given), for the caller's general path.");
}

}  // namespace caffeonspark::py_bind
