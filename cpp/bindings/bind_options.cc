// caffeonspark._engine option structs: TcpOptions, UcxOptions, CollectiveOptions and
// DataParallelOptions,
// bound field for field. The C++ structs are the one home of the defaults: the Communicator
// and DataParallel bindings take these objects, and the Python dataclasses
// (caffeonspark.distributed.comm.CommOptions, .data_parallel.DataParallelOptions) read their
// defaults from default-constructed ones.
// Tests: tests/distributed/test_option_defaults.py.
#include "bindings/convert.h"
#include "comm/collective.h"
#include "comm/tcp_transport.h"
#include "comm/ucx_transport.h"
#include "solver/data_parallel.h"

namespace caffeonspark::py_bind {

void BindOptions(py::module_& m) {
  using comm::CollectiveOptions;
  using comm::TcpOptions;
  py::class_<TcpOptions>(m, "TcpOptions", "The TCP ring transport's settings (comm/tcp_transport.h).")
      .def(py::init<>())
      .def_readwrite("timeout_seconds", &TcpOptions::timeout_seconds)
      .def_readwrite("heartbeat_seconds", &TcpOptions::heartbeat_seconds)
      .def_readwrite("hello_seconds", &TcpOptions::hello_seconds)
      .def_readwrite("handshake_seconds", &TcpOptions::handshake_seconds)
      .def_readwrite("max_frame_bytes", &TcpOptions::max_frame_bytes)
      .def_readwrite("socket_buffer_bytes", &TcpOptions::socket_buffer_bytes)
      .def_readwrite("send_thread", &TcpOptions::send_thread)
      .def_readwrite("encrypt", &TcpOptions::encrypt);

  using comm::UcxOptions;
  py::class_<UcxOptions>(m, "UcxOptions",
                         "Transport choice and the UCX transport's settings (comm/ucx_transport.h).")
      .def(py::init<>())
      .def_readwrite("transport", &UcxOptions::transport)
      .def_readwrite("tls", &UcxOptions::tls)
      .def_readwrite("max_sleep_seconds", &UcxOptions::max_sleep_seconds)
      .def_readwrite("max_registrations", &UcxOptions::max_registrations);
  m.attr("ucx_built") = comm::UcxBuilt();

  py::class_<CollectiveOptions>(m, "CollectiveOptions",
                                "The ring collectives' settings (comm/collective.h).")
      .def(py::init<>())
      .def_readwrite("segment_bytes", &CollectiveOptions::segment_bytes)
      .def_readwrite("window", &CollectiveOptions::window);

  py::class_<DataParallelOptions>(m, "DataParallelOptions",
                                  "Gradient bucketing settings (solver/data_parallel.h).")
      .def(py::init<>())
      .def_readwrite("first_bucket_bytes", &DataParallelOptions::first_bucket_bytes)
      .def_readwrite("bucket_bytes", &DataParallelOptions::bucket_bytes)
      .def_readwrite("check_params", &DataParallelOptions::check_params);
}

}  // namespace caffeonspark::py_bind
