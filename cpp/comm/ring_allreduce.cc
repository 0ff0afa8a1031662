#include "comm/ring_allreduce.h"

#include <algorithm>
#include <deque>

#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

void AddInto(float* __restrict dst, const float* __restrict src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}

void Scale(float* data, size_t n, float scale) {
  if (scale == 1.0f) return;
  for (size_t i = 0; i < n; ++i) data[i] *= scale;
}

}  // namespace

RingAllreduce::RingAllreduce(Transport& transport, CollectiveOptions options)
    : transport_(transport), options_(options) {
  COS_CHECK(options_.window >= 1, ConfigError, "allreduce: window must be >= 1");
  options_.segment_bytes = std::min(options_.segment_bytes, transport_.max_message_bytes());
  COS_CHECK(options_.segment_bytes >= sizeof(float), ConfigError,
            "allreduce: segment_bytes must hold at least one float");
}

RingAllreduce::~RingAllreduce() {
  if (!scratch_.empty()) transport_.UnregisterBuffer(scratch_.data());
}

void RingAllreduce::Run(float* data, size_t count, float scale) {
  transport_.BeginCollective(Op::kAllreduce);
  const size_t P = static_cast<size_t>(transport_.world_size());
  if (P == 1 || count == 0) {
    Scale(data, count, scale);
    return;
  }
  const size_t r = static_cast<size_t>(transport_.rank());
  const int left = transport_.left(), right = transport_.right();
  const ChunkSplit chunks{count, P};
  const size_t segment = options_.segment_bytes / sizeof(float);
  const size_t per_chunk = (chunks.size(0) + segment - 1) / segment;  // chunk 0 is the largest
  const size_t steps = P - 1;
  const size_t units = 2 * steps * per_chunk;  // (phase, step, segment), receive order
  const size_t window = static_cast<size_t>(options_.window);
  if (scratch_.size() != window * segment) {
    if (!scratch_.empty()) transport_.UnregisterBuffer(scratch_.data());
    scratch_.assign(window * segment, 0.0f);
    transport_.RegisterBuffer(scratch_.data(), scratch_.size() * sizeof(float));
  }

  // Element range [offset, offset + size) of segment k of chunk c.
  auto range = [&](size_t c, size_t k, size_t* offset) {
    const size_t begin = k * segment;
    const size_t size = chunks.size(c);
    *offset = chunks.begin(c) + begin;
    return begin < size ? std::min(segment, size - begin) : size_t{0};
  };
  auto send = [&](size_t c, size_t k) {
    size_t offset;
    const size_t n = range(c, k, &offset);
    if (n > 0) transport_.PostSend(right, data + offset, n * sizeof(float));
  };
  // Unit u = (phase, step, k): reduce-scatter receives chunk (r-s-1), all-gather chunk (r-s).
  auto unit_chunk = [&](size_t u, bool* gather) {
    *gather = u >= steps * per_chunk;
    const size_t s = (u % (steps * per_chunk)) / per_chunk;
    return (r + 2 * P - s - (*gather ? 0 : 1)) % P;
  };

  struct Posted {
    size_t unit;
    bool active;
    Transport::Request request;
  };
  std::deque<Posted> posted;
  size_t next_post = 0;
  auto post = [&](size_t u) {
    bool gather;
    const size_t c = unit_chunk(u, &gather);
    size_t offset;
    const size_t n = range(c, u % per_chunk, &offset);
    Posted entry{u, n > 0, 0};
    if (n > 0) {
      float* into = gather ? data + offset : scratch_.data() + (u % window) * segment;
      entry.request = transport_.PostRecv(left, into, n * sizeof(float));
    }
    posted.push_back(entry);
  };

  for (size_t k = 0; k < per_chunk; ++k) send(r, k);  // reduce-scatter step 0: own chunk
  for (size_t u = 0; u < units; ++u) {
    while (next_post < units && next_post < u + window) post(next_post++);
    const Posted entry = posted.front();
    posted.pop_front();
    if (entry.active) transport_.Wait(entry.request);
    bool gather;
    const size_t c = unit_chunk(u, &gather);
    const size_t k = u % per_chunk;
    const size_t s = (u % (steps * per_chunk)) / per_chunk;
    size_t offset;
    const size_t n = range(c, k, &offset);
    if (!gather) {
      AddInto(data + offset, scratch_.data() + (u % window) * segment, n);
      if (s + 1 == steps) Scale(data + offset, n, scale);  // owned and final: scale once
      send(c, k);  // next reduce-scatter step, or all-gather step 0 of the owned chunk
    } else if (s + 1 < steps) {
      send(c, k);  // forward around the ring
    }
  }
  transport_.WaitAll();
}

}  // namespace caffeonspark::comm
