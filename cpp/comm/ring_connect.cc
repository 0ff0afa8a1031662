#include "comm/ring_connect.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <thread>

#include "comm/handshake_acceptor.h"
#include "core/errors.h"

namespace caffeonspark::comm {

std::string RankName(int rank, const std::vector<std::string>& addresses) {
  if (rank < 0 || rank >= static_cast<int>(addresses.size())) return Msg("rank ", rank);
  return Msg("rank ", rank, " (", addresses[rank], ")");
}

namespace {

// The connector side: connects and handshakes, and connects again while the acceptor hangs
// up before its CHALLENGE (it drops unproven connections when strays flood it).
Fd ConnectRight(const JobIdentity& me, int right, const std::string& name,
                const std::string& address, const Deadline& deadline, LinkKeys* keys) {
  int pause_ms = 5;
  for (int hang_ups = 0;; ++hang_ups) {
    if (hang_ups > 0) {
      if (deadline.Expired())
        throw PeerTimeout(Msg(name, " closed the connection before its challenge ", hang_ups,
                              " times until the deadline"));
      // A growing pause, so that a listener that hangs up at once is not hammered.
      poll(nullptr, 0, std::min(pause_ms, deadline.PollMillis()));
      pause_ms = std::min(pause_ms * 2, 100);
    }
    Fd fd = ConnectBefore(Address::Parse(address), name, deadline);
    ConfigureStream(fd.get(), 0);
    if (HandshakeAsConnector(fd.get(), me, right, name, deadline, keys)) return fd;
  }
}

}  // namespace

RingSockets ConnectRing(Listener& listener, const JobIdentity& me,
                        const std::vector<std::string>& addresses, double timeout_seconds,
                        double hello_seconds, double handshake_seconds) {
  const int world = me.world_size;
  const int left = (me.rank + world - 1) % world, right = (me.rank + 1) % world;
  const Deadline deadline = Deadline::After(timeout_seconds);
  Fd cancel(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  COS_CHECK(cancel.valid(), CommError, "eventfd(): ", ErrnoText(errno));

  RingSockets ring;
  std::string accept_error;
  HandshakeAcceptor acceptor(listener, me, left, hello_seconds, handshake_seconds);
  std::thread accepting([&] {
    try {
      ring.left = acceptor.Run(deadline, cancel.get(), &ring.left_keys);
    } catch (const std::exception& error) {
      accept_error = error.what();
    } catch (...) {  // nothing may escape a thread
      accept_error = "an unknown error";
    }
  });

  std::exception_ptr connect_error;
  try {
    ring.right = ConnectRight(me, right, RankName(right, addresses), addresses[right], deadline,
                              &ring.right_keys);
  } catch (...) {
    connect_error = std::current_exception();
    const uint64_t one = 1;
    if (write(cancel.get(), &one, sizeof(one)) < 0) {
      // The acceptor then stops at the deadline instead.
    }
  }
  accepting.join();
  listener.Close();
  if (connect_error) {
    // Why this rank refused its left neighbour (say, encryption set differently) often
    // explains why the right one is gone too: that rank may have failed the same way.
    const std::string note = acceptor.RejectionNote();
    if (note.empty()) std::rethrow_exception(connect_error);
    try {
      std::rethrow_exception(connect_error);
    } catch (const PeerTimeout& error) {
      throw PeerTimeout(Msg(error.what(), note));
    } catch (const CommError& error) {
      throw CommError(Msg(error.what(), note));
    }
  }
  const std::string left_name = RankName(left, addresses);
  if (!accept_error.empty())
    throw CommError(Msg("waiting for ", left_name, " to connect: ", accept_error));
  if (!ring.left.valid()) {
    throw PeerTimeout(Msg(left_name, " did not connect to ", RankName(me.rank, addresses),
                          " within ", timeout_seconds, " s", acceptor.RejectionNote()));
  }
  return ring;
}

}  // namespace caffeonspark::comm
