// caffeonspark._engine comm: listeners, communicators (ring allreduce / broadcast / barrier
// over TCP or UCX), DataParallel (a solver's gradients reduced in buckets during backward) and the
// SHA-256 / HMAC used by the handshake (exposed for the tests); their option objects are
// bound in bind_options.cc. Every blocking call (connecting the ring, each collective)
// releases the GIL; arrays are reduced in place, so they must be C-contiguous and writable
// (allreduce: float32).
// Python wrappers: python/caffeonspark/distributed/{comm,data_parallel}.py.
// Tests: tests/comm/, tests/distributed/.
#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "bindings/gil_release.h"
#include "comm/communicator.h"
#include "comm/handshake.h"
#include "comm/sha256.h"
#include "core/errors.h"
#include "solver/data_parallel.h"
#include "solver/solver.h"

namespace caffeonspark::py_bind {

namespace {

using comm::Communicator;
using comm::Listener;

// A writable C-contiguous array's buffer (any dtype); `what` names the call for errors.
py::buffer_info WritableBuffer(const py::array& array, const char* what) {
  COS_CHECK(array.flags() & py::array::c_style, ConfigError, what,
            ": the array must be C-contiguous (use numpy.ascontiguousarray)");
  COS_CHECK(array.writeable(), ConfigError, what, ": the array must be writable (it is "
            "updated in place)");
  return array.request(true);
}

py::bytes DigestBytes(const comm::Digest& digest) {
  return py::bytes(reinterpret_cast<const char*>(digest.data()), digest.size());
}

}  // namespace

void BindComm(py::module_& m) {
  py::class_<Listener, std::shared_ptr<Listener>>(m, "CommListener",
                                                  "A bound TCP listener for one rank's ring link.")
      .def(py::init([](const std::string& host, int port) {
             return std::make_shared<Listener>(Listener::Bind(host, port));
           }),
           py::arg("host") = "127.0.0.1", py::arg("port") = 0)
      .def_property_readonly("address", [](const Listener& l) { return l.address().ToString(); })
      .def("close", &Listener::Close);

  py::class_<Communicator, std::shared_ptr<Communicator>>(m, "Communicator")
      .def(py::init([](Listener& listener, int rank, std::vector<std::string> addresses,
                       const py::bytes& secret, const std::string& job_id,
                       comm::TcpOptions tcp, comm::UcxOptions ucx,
                       comm::CollectiveOptions collective) {
             comm::JobIdentity me;
             me.job_id = job_id;
             me.secret = std::string(secret);
             me.world_size = static_cast<int>(addresses.size());
             me.rank = rank;
             GilRelease release;
             return Communicator::Connect(std::move(listener), std::move(me),
                                          std::move(addresses), tcp, std::move(ucx), collective);
           }),
           py::arg("listener"), py::arg("rank"), py::arg("addresses"), py::arg("secret"),
           py::arg("job_id"), py::arg_v("tcp", comm::TcpOptions(), "TcpOptions()"),
           py::arg_v("ucx", comm::UcxOptions(), "UcxOptions()"),
           py::arg_v("collective", comm::CollectiveOptions(), "CollectiveOptions()"),
           "Joins the ring: accepts rank-1 on `listener` and connects to rank+1 (blocking, "
           "GIL released, up to tcp.timeout_seconds), then runs it on the transport "
           "ucx.transport selects.")
      .def_property_readonly("rank", &Communicator::rank)
      .def_property_readonly("world_size", &Communicator::world_size)
      .def_property_readonly("failed", &Communicator::failed)
      .def_property_readonly("heartbeat_seconds", &Communicator::heartbeat_seconds)
      .def_property_readonly("transport", &Communicator::transport,
                             "What carries the data: 'tcp', 'ucx (tcp/lo.0)', ...")
      .def_property_readonly("transport_note", &Communicator::transport_note,
                             "Why transport='auto' chose TCP ('' otherwise).")
      .def("peer_name", &Communicator::PeerName, py::arg("rank"))
      .def(
          "allreduce",
          [](Communicator& c, const py::array& array, bool average) {
            COS_CHECK(array.dtype().is(py::dtype::of<float>()), ConfigError,
                      "allreduce: the array must be float32, got ",
                      std::string(py::str(array.dtype())));
            py::buffer_info info = WritableBuffer(array, "allreduce");
            auto* data = static_cast<float*>(info.ptr);
            const size_t count = static_cast<size_t>(info.size);
            GilRelease release;
            c.Allreduce(data, count, average);
          },
          py::arg("array"), py::arg("average") = false,
          "In place: array = sum over ranks (average=True: the mean).")
      .def(
          "broadcast",
          [](Communicator& c, const py::array& array, int root) {
            py::buffer_info info = WritableBuffer(array, "broadcast");
            void* data = info.ptr;
            const size_t bytes = static_cast<size_t>(info.size * info.itemsize);
            GilRelease release;
            c.Broadcast(data, bytes, root);
          },
          py::arg("array"), py::arg("root") = 0, "In place: every rank receives root's bytes.")
      .def("barrier", &Communicator::Barrier, py::call_guard<GilRelease>())
      .def("idle", &Communicator::Idle, py::arg("seconds"),
           py::call_guard<GilRelease>())
      .def("abort", &Communicator::Abort, py::arg("reason"),
           py::call_guard<GilRelease>())
      .def("close", &Communicator::Close, py::call_guard<GilRelease>());

  py::class_<DataParallel, std::shared_ptr<DataParallel>>(m, "DataParallel")
      .def(py::init([](const std::shared_ptr<Solver>& solver,
                       const std::shared_ptr<Communicator>& communicator,
                       DataParallelOptions options) {
             auto sync = std::make_shared<DataParallel>(solver->net(), communicator, options);
             solver->set_gradient_sync(sync);
             return sync;
           }),
           py::arg("solver"), py::arg("communicator"),
           py::arg_v("options", DataParallelOptions(), "DataParallelOptions()"),
           "Attaches to `solver`: its gradients are averaged over the communicator's ranks.")
      .def(
          "broadcast_state",
          [](DataParallel& sync, const std::vector<std::shared_ptr<Tensor>>& extra) {
            std::vector<Tensor*> tensors;
            for (const auto& tensor : extra) tensors.push_back(tensor.get());
            GilRelease release;
            sync.BroadcastState(tensors);
          },
          py::arg("extra"), "Rank 0's parameters and `extra` tensors to every rank.")
      .def(
          "detach",
          [](DataParallel& sync, Solver& solver) {
            if (solver.gradient_sync().get() == &sync) solver.set_gradient_sync(nullptr);
            GilRelease release;
            sync.Stop();
          },
          py::arg("solver"))
      .def_property_readonly("buckets",
                             [](const DataParallel& sync) {
                               py::list out;
                               for (const GradientBucket& b : sync.buckets()) {
                                 py::dict d;
                                 d["params"] = b.params;
                                 d["count"] = b.count;
                                 d["ready_layer"] = b.ready_layer;
                                 out.append(d);
                               }
                               return out;
                             })
      .def_property_readonly(
          "timeline",
          [](const DataParallel& sync) {
            py::list out;
            for (const IterationTimes& t : sync.timeline())
              out.append(py::make_tuple(t.backward_end, t.reduced));
            return out;
          },
          "(backward_end, reduced) per recent iteration, seconds of time.monotonic()'s clock")
      .def_property_readonly("stats", [](const DataParallel& sync) {
        const DataParallelStats s = sync.stats();
        py::dict d;
        d["iterations"] = s.iterations;
        d["comm_seconds"] = s.comm_seconds;
        d["wait_seconds"] = s.wait_seconds;
        d["check_seconds"] = s.check_seconds;
        return d;
      });

  m.def(
      "comm_sha256",
      [](const py::bytes& data) {
        const std::string bytes(data);
        return DigestBytes(comm::Sha256Of(bytes.data(), bytes.size()));
      },
      py::arg("data"), "SHA-256 (the comm layer's own, for tests).");
  m.def(
      "comm_hmac_sha256",
      [](const py::bytes& key, const py::bytes& message) {
        const std::string text(message);
        return DigestBytes(comm::HmacSha256(std::string(key), text.data(), text.size()));
      },
      py::arg("key"), py::arg("message"), "HMAC-SHA256 (the comm layer's own, for tests).");
  m.def(
      "_derive_link_keys",
      [](const py::bytes& secret, const std::string& job_id, int world_size, int connector,
         int acceptor, const py::bytes& connector_nonce, const py::bytes& acceptor_nonce) {
        comm::JobIdentity me;
        me.job_id = job_id;
        me.secret = std::string(secret);
        me.world_size = world_size;
        const comm::LinkKeys keys = comm::DeriveLinkKeys(
            me, connector, acceptor, std::string(connector_nonce), std::string(acceptor_nonce));
        return py::make_tuple(DigestBytes(keys.to_acceptor), DigestBytes(keys.to_connector));
      },
      py::arg("secret"), py::arg("job_id"), py::arg("world_size"), py::arg("connector"),
      py::arg("acceptor"), py::arg("connector_nonce"), py::arg("acceptor_nonce"),
      "Test hook: one connection's session keys (to_acceptor, to_connector), handshake.h.");
}

}  // namespace caffeonspark::py_bind
