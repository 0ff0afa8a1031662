// RingAllreduce: in-place sum of a float32 buffer over every rank of a Transport ring, then
// an optional scale (average = sum then scale by 1/P). Reduce-scatter then all-gather:
//
//   the buffer is cut into P chunks (ChunkSplit), each chunk into segments of
//   segment_bytes. Reduce-scatter step s = 0..P-2: rank r sends chunk (r-s) mod P to r+1
//   and receives chunk (r-s-1) mod P from r-1, adding it into its own copy. After P-1 steps
//   rank r owns chunk (r+1) mod P, summed over all ranks in ring order; it scales it and the
//   all-gather (P-1 more steps) forwards each owned chunk around the ring unchanged.
//
// Invariants: each chunk is summed by exactly one owner and every other rank receives the
// owner's bytes, so all ranks end bit-identical; each rank sends and receives 2(P-1)/P of
// the buffer (not P times it). Segments pipeline the ring: a received segment is added and
// forwarded at once while later segments are still in flight, with `window` receives posted
// ahead (reduce-scatter receives land in a scratch buffer of window segments, all-gather
// receives straight into the buffer; the scratch buffer is registered with the transport,
// Transport::RegisterBuffer). The sum of an element adds the P values in ring order
// starting at the chunk's first sender (float32 rounding at each add).
// Any length (0 and lengths below P included: empty segments are skipped on both sides).
// Tests: tests/comm/test_allreduce.py.
#pragma once

#include <vector>

#include "comm/collective.h"
#include "comm/transport.h"

namespace caffeonspark::comm {

class RingAllreduce {
 public:
  RingAllreduce(Transport& transport, CollectiveOptions options);
  ~RingAllreduce();
  RingAllreduce(const RingAllreduce&) = delete;
  RingAllreduce& operator=(const RingAllreduce&) = delete;
  // data[i] = scale * sum over ranks of data[i], for i < count.
  void Run(float* data, size_t count, float scale = 1.0f);

 private:
  Transport& transport_;
  CollectiveOptions options_;
  std::vector<float> scratch_;
};

}  // namespace caffeonspark::comm
