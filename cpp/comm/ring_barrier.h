// RingBarrier: returns on a rank only once every rank has entered. Two laps of an empty
// token around the ring starting at rank 0: after the first lap rank 0 knows all ranks
// arrived; the second lap tells the others (rank 0 takes the token back too, so the stream
// holds nothing of the barrier afterwards). Cost: 2P messages of zero bytes, 2P latencies.
// Tests: tests/comm/test_allreduce.py (barrier ordering test).
#pragma once

#include "comm/transport.h"

namespace caffeonspark::comm {

class RingBarrier {
 public:
  explicit RingBarrier(Transport& transport) : transport_(transport) {}
  void Run();

 private:
  Transport& transport_;
};

}  // namespace caffeonspark::comm
