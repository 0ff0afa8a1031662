#include "comm/ring_connect.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <thread>

#include "core/errors.h"

namespace caffeonspark::comm {

std::string RankName(int rank, const std::vector<std::string>& addresses) {
  if (rank < 0 || rank >= static_cast<int>(addresses.size())) return Msg("rank ", rank);
  return Msg("rank ", rank, " (", addresses[rank], ")");
}

RingSockets ConnectRing(Listener& listener, const JobIdentity& me,
                        const std::vector<std::string>& addresses, double timeout_seconds,
                        double handshake_seconds) {
  const int world = me.world_size;
  const int left = (me.rank + world - 1) % world, right = (me.rank + 1) % world;
  const Deadline deadline = Deadline::After(timeout_seconds);
  Fd cancel(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  COS_CHECK(cancel.valid(), CommError, "eventfd(): ", ErrnoText(errno));

  RingSockets ring;
  std::string accept_error;
  std::vector<std::string> rejected;
  std::thread acceptor([&] {
    try {
      for (;;) {
        std::string from;
        Fd fd = AcceptBefore(listener, deadline, &from, cancel.get());
        if (!fd.valid()) return;  // deadline or cancelled
        ConfigureStream(fd.get(), 0);
        const Deadline handshake = deadline.Earlier(Deadline::After(handshake_seconds));
        std::string why;
        if (HandshakeAsAcceptor(fd.get(), me, left, from, handshake, &why)) {
          ring.left = std::move(fd);
          return;
        }
        rejected.push_back(why);
      }
    } catch (const std::exception& error) {
      accept_error = error.what();
    }
  });

  std::exception_ptr connect_error;
  try {
    const std::string name = RankName(right, addresses);
    ring.right = ConnectBefore(Address::Parse(addresses[right]), name, deadline);
    ConfigureStream(ring.right.get(), 0);
    HandshakeAsConnector(ring.right.get(), me, right, name, deadline);
  } catch (...) {
    connect_error = std::current_exception();
    const uint64_t one = 1;
    if (write(cancel.get(), &one, sizeof(one)) < 0) {
      // The acceptor then stops at the deadline instead.
    }
  }
  acceptor.join();
  listener.Close();
  if (connect_error) std::rethrow_exception(connect_error);
  const std::string left_name = RankName(left, addresses);
  if (!accept_error.empty())
    throw CommError(Msg("waiting for ", left_name, " to connect: ", accept_error));
  if (!ring.left.valid()) {
    std::string note;
    for (const std::string& why : rejected) note += "; rejected " + why;
    throw PeerTimeout(Msg(left_name, " did not connect to ", RankName(me.rank, addresses),
                          " within ", timeout_seconds, " s", note));
  }
  return ring;
}

}  // namespace caffeonspark::comm
