#include "comm/frame_writer.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <exception>

#include "core/errors.h"

namespace caffeonspark::comm {

OutFrame OutFrame::Control(FrameKind kind, std::string payload) {
  OutFrame frame;
  FrameHeader header;
  header.kind = static_cast<uint16_t>(kind);
  header.length = static_cast<uint32_t>(payload.size());
  EncodeHeader(header, frame.header);
  frame.payload_bytes = payload.size();
  frame.owned = std::move(payload);
  return frame;
}

OutFrame OutFrame::Data(uint16_t op, uint32_t seq, const void* data, size_t bytes) {
  OutFrame frame;
  FrameHeader header;
  header.kind = static_cast<uint16_t>(FrameKind::kData);
  header.op = op;
  header.seq = seq;
  header.length = static_cast<uint32_t>(bytes);
  EncodeHeader(header, frame.header);
  frame.payload = static_cast<const uint8_t*>(data);
  frame.payload_bytes = bytes;
  frame.user = true;
  return frame;
}

FrameWriter::FrameWriter(int fd, bool threaded, int notify_fd,
                         std::unique_ptr<FrameSealer> sealer)
    : fd_(fd), notify_fd_(notify_fd), sealer_(std::move(sealer)) {
  if (!threaded || fd < 0) return;
  wake_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  COS_CHECK(wake_.valid(), CommError, "eventfd(): ", ErrnoText(errno));
  threaded_ = true;
  thread_ = std::thread([this] { Run(); });
}

FrameWriter::~FrameWriter() { Stop(); }

void FrameWriter::Push(OutFrame frame) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(frame));
  }
  if (threaded()) {
    work_.notify_one();
  } else {
    WriteNow();
  }
}

bool FrameWriter::empty() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.empty();
}

void FrameWriter::Seal(OutFrame& frame) {
  if (!sealer_ || frame.sealed) return;
  const uint8_t* plain = frame.user ? frame.payload
                                    : reinterpret_cast<const uint8_t*>(frame.owned.data());
  if (staging_.size() < frame.payload_bytes + kTagBytes)
    staging_.resize(frame.payload_bytes + kTagBytes);
  sealer_->Seal(frame.header, plain, frame.payload_bytes, staging_.data());
  frame.payload = staging_.data();
  frame.payload_bytes += kTagBytes;
  frame.sealed = true;
}

ssize_t FrameWriter::WriteOnce(OutFrame& frame) {
  Seal(frame);
  const uint8_t* payload = frame.user || frame.sealed
                               ? frame.payload
                               : reinterpret_cast<const uint8_t*>(frame.owned.data());
  iovec parts[2];
  int count = 0;
  if (frame.written < kFrameHeaderBytes)
    parts[count++] = iovec{frame.header + frame.written, kFrameHeaderBytes - frame.written};
  const size_t payload_done =
      frame.written > kFrameHeaderBytes ? frame.written - kFrameHeaderBytes : 0;
  if (payload_done < frame.payload_bytes) {
    parts[count++] =
        iovec{const_cast<uint8_t*>(payload + payload_done), frame.payload_bytes - payload_done};
  }
  if (count == 0) return 1;  // an empty frame already fully written
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = static_cast<size_t>(count);
  for (;;) {
    const ssize_t sent = sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (sent >= 0) {
      frame.written += static_cast<size_t>(sent);
      last_sent_.store(Clock::now());
      return sent;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -1;
  }
}

void FrameWriter::Completed(bool user) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.pop_front();
  }
  if (user) {
    user_done_.fetch_add(1);  // sequentially consistent with waiting_: the transport sees
    if (threaded() && waiting_.load()) Notify();  // either the count or the notification
  }
}

void FrameWriter::Notify() {
  const uint64_t one = 1;
  if (notify_fd_ >= 0 && write(notify_fd_, &one, sizeof(one)) < 0) {
    // The counter is saturated: the transport has a wake-up pending anyway.
  }
}

bool FrameWriter::WriteNow() {
  if (fd_ < 0 || error_.load() != 0) return error_.load() == 0;
  for (;;) {
    OutFrame* frame;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (queue_.empty()) return true;
      frame = &queue_.front();
    }
    const ssize_t result = WriteOnce(*frame);
    if (result < 0) {
      error_.store(errno);
      return false;
    }
    if (frame->written == kFrameHeaderBytes + frame->payload_bytes) {
      Completed(frame->user);
    } else if (result == 0) {
      return true;  // would block
    }
  }
}

void FrameWriter::Run() {
  for (;;) {
    OutFrame* frame;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      frame = &queue_.front();
    }
    while (frame->written < kFrameHeaderBytes + frame->payload_bytes) {
      ssize_t result;
      try {
        result = WriteOnce(*frame);
      } catch (const std::exception&) {  // libcrypto failed to seal: nothing may escape
        errno = EPROTO;                  // the thread; the transport reports the link broken
        result = -1;
      }
      if (result < 0) {
        error_.store(errno);
        Notify();
        std::unique_lock<std::mutex> lock(mutex_);
        work_.wait(lock, [this] { return stop_; });
        return;
      }
      if (result > 0) continue;
      pollfd entries[2] = {{fd_, POLLOUT, 0}, {wake_.get(), POLLIN, 0}};
      if (poll(entries, 2, -1) < 0 && errno != EINTR) {
        error_.store(errno);
        Notify();
        return;
      }
      if (entries[1].revents != 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return;
      }
    }
    Completed(frame->user);
  }
}

void FrameWriter::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  const uint64_t one = 1;
  if (write(wake_.get(), &one, sizeof(one)) < 0) {
    // Already signalled.
  }
  thread_.join();
  threaded_ = false;
}

void FrameWriter::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.clear();
}

void FrameWriter::FinishWith(OutFrame frame, const Deadline& linger) {
  Stop();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (queue_.size() > 1) queue_.pop_back();
    // A sealed frame used up a frame number: it must go, or the receiver's count slips.
    if (!queue_.empty() && queue_.front().written == 0 && !queue_.front().sealed) queue_.clear();
    queue_.push_back(std::move(frame));
  }
  if (fd_ < 0) return;
  while (WriteNow() && !empty()) {
    pollfd entry{fd_, POLLOUT, 0};
    if (poll(&entry, 1, linger.PollMillis()) <= 0 && linger.Expired()) return;
  }
}

}  // namespace caffeonspark::comm
