// FrameWriter: the outgoing frames of one TCP link, written in the order pushed, each as
// one writev of header + payload (payload bytes straight from the caller's buffer).
//
// Two modes. Inline: the transport's poll loop calls WriteNow when the socket is writable.
// Threaded: a writer thread of its own sends while the transport's thread receives and
// reduces, so on a machine with a core to spare the kernel's send work (on loopback, the
// whole TCP path) overlaps the receive copy and the add; it blocks in poll() on the socket
// and a wake-up eventfd, never spins, and writes 1 to `notify_fd` whenever a user frame is
// done (while the transport waits for one: set_waiting) or the connection breaks, which
// wakes the transport's poll.
//
// On an encrypted link the writer seals each frame (frame_cipher.h) just before its first
// byte is written, on the thread that writes it, into a staging buffer of its own: the
// caller's buffer is never modified, the encryption of the data frames runs on the writer
// thread (overlapping the receives and the reduction), and frames are sealed in wire order,
// which the receiver's frame counter relies on. A sealed frame is never dropped unsent.
//
// Thread contract: Push, empty, user_done, last_sent and error may be called from the
// transport's thread at any time. Stop() ends the writer thread; after it the transport
// owns the queue (FinishWith, Clear, WriteNow) - it stops the writer before any failure or
// close handling. Tests: through tests/comm/ (the transport runs threaded by default).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/deadline.h"
#include "comm/frame.h"
#include "comm/frame_cipher.h"
#include "comm/socket.h"

namespace caffeonspark::comm {

struct OutFrame {
  uint8_t header[kFrameHeaderBytes];
  const uint8_t* payload = nullptr;  // the caller's bytes (user frames) ...
  std::string owned;                 // ... or our own (control frames)
  size_t payload_bytes = 0;
  size_t written = 0;                // header and payload bytes written so far
  bool user = false;                 // a posted send: counts toward user_done()
  bool sealed = false;               // payload now points at the writer's staging buffer

  static OutFrame Control(FrameKind kind, std::string payload);
  static OutFrame Data(uint16_t op, uint32_t seq, const void* data, size_t bytes);
};

class FrameWriter {
 public:
  // `sealer`: the link's sending cipher, or null for a plain link.
  FrameWriter(int fd, bool threaded, int notify_fd, std::unique_ptr<FrameSealer> sealer = nullptr);
  ~FrameWriter();
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  void Push(OutFrame frame);
  bool empty() const;
  bool threaded() const { return threaded_; }
  uint64_t user_done() const { return user_done_.load(); }
  Clock::time_point last_sent() const { return last_sent_.load(); }
  // errno of a broken connection (0: none so far).
  int error() const { return error_.load(); }
  // Threaded mode notifies `notify_fd` of finished user frames only while a waiter says it
  // waits for one (a broken connection always): no wake-ups nobody needs.
  void set_waiting(bool waiting) { waiting_.store(waiting); }

  // Inline mode (or after Stop): writes until the socket would block; false on a broken
  // connection (error() then tells why).
  bool WriteNow();
  // Ends the writer thread (idempotent); the queue keeps what was not written.
  void Stop();
  void Clear();
  // After Stop: keeps only a partly written frame (the receiver could not parse past it),
  // appends `frame`, and writes for up to `linger`. Best effort.
  void FinishWith(OutFrame frame, const Deadline& linger);

 private:
  void Run();
  // Writes some of `frame`; >0 bytes written, 0 would block, -1 error (errno).
  ssize_t WriteOnce(OutFrame& frame);
  void Completed(bool user);
  void Notify();
  // Encrypts `frame` into staging_ unless sealed already (or the link is plain).
  void Seal(OutFrame& frame);

  int fd_;
  int notify_fd_;
  bool threaded_ = false;  // written before the thread starts and after it ends
  Fd wake_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::deque<OutFrame> queue_;   // references stay valid across push_back / pop_front
  bool stop_ = false;
  std::atomic<uint64_t> user_done_{0};
  std::atomic<Clock::time_point> last_sent_{Clock::now()};
  std::atomic<int> error_{0};
  std::atomic<bool> waiting_{false};
  std::unique_ptr<FrameSealer> sealer_;
  std::vector<uint8_t> staging_;  // the sealed front frame: only one is written at a time
  std::thread thread_;
};

}  // namespace caffeonspark::comm
