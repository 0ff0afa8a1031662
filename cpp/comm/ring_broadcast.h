// RingBroadcast: copies `bytes` bytes from rank `root` to every rank, in place. The bytes
// travel the ring root -> root+1 -> ... -> root-1 in segments of segment_bytes; each rank
// forwards a segment as soon as it has it (pipelined), so the time is about
// bytes / bandwidth + (P-2) segment latencies, and every rank ends with the root's bytes.
// The last rank of the chain only receives. Any length, 0 included.
// Tests: tests/comm/test_allreduce.py (broadcast grid).
#pragma once

#include "comm/collective.h"
#include "comm/transport.h"

namespace caffeonspark::comm {

class RingBroadcast {
 public:
  RingBroadcast(Transport& transport, CollectiveOptions options);
  void Run(void* data, size_t bytes, int root);

 private:
  Transport& transport_;
  CollectiveOptions options_;
};

}  // namespace caffeonspark::comm
