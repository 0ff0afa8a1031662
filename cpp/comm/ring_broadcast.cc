#include "comm/ring_broadcast.h"

#include <algorithm>
#include <deque>

#include "core/errors.h"

namespace caffeonspark::comm {

RingBroadcast::RingBroadcast(Transport& transport, CollectiveOptions options)
    : transport_(transport), options_(options) {
  options_.segment_bytes = std::max<size_t>(
      1, std::min(options_.segment_bytes, transport_.max_message_bytes()));
}

void RingBroadcast::Run(void* data, size_t bytes, int root) {
  const int P = transport_.world_size();
  COS_CHECK(root >= 0 && root < P, ConfigError, "broadcast: root ", root,
            " is not a rank of a world of ", P);
  transport_.BeginCollective(Op::kBroadcast);
  if (P == 1 || bytes == 0) return;
  auto* base = static_cast<uint8_t*>(data);
  const int position = (transport_.rank() - root + P) % P;  // 0 = root, P-1 = end of chain
  const size_t segment = options_.segment_bytes;
  const size_t segments = (bytes + segment - 1) / segment;
  auto length = [&](size_t k) { return std::min(segment, bytes - k * segment); };

  if (position == 0) {
    for (size_t k = 0; k < segments; ++k)
      transport_.PostSend(transport_.right(), base + k * segment, length(k));
    transport_.WaitAll();
    return;
  }
  std::deque<Transport::Request> posted;
  size_t next_post = 0;
  const size_t window = static_cast<size_t>(std::max(1, options_.window));
  for (size_t k = 0; k < segments; ++k) {
    while (next_post < segments && next_post < k + window) {
      posted.push_back(
          transport_.PostRecv(transport_.left(), base + next_post * segment, length(next_post)));
      ++next_post;
    }
    transport_.Wait(posted.front());
    posted.pop_front();
    if (position < P - 1) transport_.PostSend(transport_.right(), base + k * segment, length(k));
  }
  transport_.WaitAll();
}

}  // namespace caffeonspark::comm
