// Builds one rank's two ring connections: it accepts its left neighbour (rank-1) on its
// listener, on a helper thread, while it connects to its right neighbour (rank+1) - both
// at once, else the ring would wait on itself. Each connection is authenticated by the
// handshake (handshake.h) before it counts. Incoming connections are handshaken
// concurrently (handshake_acceptor.h): one that fails is dropped, and a stray one is held
// to its own `hello_seconds` / `handshake_seconds`, never to the ring's deadline (refusals
// are counted, the first few listed, in the timeout message). The connector connects again
// when the acceptor drops it before its CHALLENGE. Everything must stand within
// `timeout_seconds`. The listener is closed when this returns. Errors name the peer's rank
// and address.
// Tests: tests/comm/test_handshake.py, tests/comm/test_faults.py,
// tests/hostile/test_ring_setup.py.
#pragma once

#include <string>
#include <vector>

#include "comm/handshake.h"
#include "comm/socket.h"

namespace caffeonspark::comm {

struct RingSockets {
  Fd left;   // accepted from rank-1: data comes in here
  Fd right;  // connected to rank+1: data goes out here
  LinkKeys left_keys, right_keys;  // their session keys (when me.encrypt)
};

// "rank 3 (10.0.0.7:41000)".
std::string RankName(int rank, const std::vector<std::string>& addresses);

RingSockets ConnectRing(Listener& listener, const JobIdentity& me,
                        const std::vector<std::string>& addresses, double timeout_seconds,
                        double hello_seconds, double handshake_seconds);

}  // namespace caffeonspark::comm
