#include "comm/ring_barrier.h"

namespace caffeonspark::comm {

void RingBarrier::Run() {
  transport_.BeginCollective(Op::kBarrier);
  if (transport_.world_size() == 1) return;
  char token = 0;
  for (int lap = 0; lap < 2; ++lap) {
    if (transport_.rank() == 0) {
      transport_.PostSend(transport_.right(), &token, 0);
      transport_.Wait(transport_.PostRecv(transport_.left(), &token, 0));
    } else {
      transport_.Wait(transport_.PostRecv(transport_.left(), &token, 0));
      transport_.PostSend(transport_.right(), &token, 0);
    }
  }
  transport_.WaitAll();
}

}  // namespace caffeonspark::comm
