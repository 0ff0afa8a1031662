// What the ring collectives share: their options and the split of a buffer into chunks (one
// per rank) and segments (the pipelining unit). Both splits are pure functions of
// (length, world size, segment size), so every rank computes the same ones.
// Tests: tests/comm/test_allreduce.py (the grid covers lengths 0, 1, P-1, odd sizes).
#pragma once

#include <algorithm>
#include <cstddef>

namespace caffeonspark::comm {

struct CollectiveOptions {
  size_t segment_bytes = 512 * 1024;  // bytes per frame; a chunk is sent as several segments
  int window = 4;                     // receives posted ahead of the one being reduced
};

// Element ranges of `count` elements split into `parts` chunks whose sizes differ by at most
// one (the first count % parts chunks are one longer).
struct ChunkSplit {
  size_t count;
  size_t parts;
  size_t begin(size_t chunk) const {
    return chunk * (count / parts) + std::min(chunk, count % parts);
  }
  size_t size(size_t chunk) const { return count / parts + (chunk < count % parts ? 1 : 0); }
};

}  // namespace caffeonspark::comm
