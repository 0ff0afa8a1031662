// Accepts and authenticates the incoming ring link. Every incoming connection is handshaken
// at the same time as the others on one poll() loop (AcceptorHandshake, handshake.h), so a
// stray, idle or hostile connection costs the rank we wait for nothing: its HELLO must be
// complete within `hello_seconds` of the accept and its whole handshake within
// `handshake_seconds`, on a clock of its own, never the ring's. At most
// kMaxPendingHandshakes unauthenticated connections are held (kMaxPendingPerHost from one
// host); a new one beyond that evicts the oldest that has not delivered a valid HELLO (the
// real peer sends its HELLO right after connecting, so it rarely is that one, and its
// connector connects again if it is: HandshakeAsConnector). No byte of an unauthenticated
// connection reaches a tensor: the connection is handed over only after WELCOME was sent.
// Tests: tests/hostile/test_ring_setup.py, tests/comm/test_handshake.py.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "comm/deadline.h"
#include "comm/handshake.h"
#include "comm/socket.h"

namespace caffeonspark::comm {

constexpr size_t kMaxPendingHandshakes = 64;
constexpr size_t kMaxPendingPerHost = 48;
constexpr size_t kAcceptsPerRound = 16;  // then serve the pending ones: accept cannot starve them
constexpr size_t kListedRejections = 5;  // refused connections named in the timeout message

class HandshakeAcceptor {
 public:
  // `listener` and `me` must outlive this object.
  HandshakeAcceptor(const Listener& listener, const JobIdentity& me, int expected_rank,
                    double hello_seconds, double handshake_seconds);
  ~HandshakeAcceptor();
  HandshakeAcceptor(const HandshakeAcceptor&) = delete;
  HandshakeAcceptor& operator=(const HandshakeAcceptor&) = delete;

  // The authenticated connection from `expected_rank`, or an empty Fd when `deadline`
  // passes or `cancel_fd` becomes readable; `keys` receives its session keys (handshake.h).
  // Throws CommError when poll() or accept() fail.
  Fd Run(const Deadline& deadline, int cancel_fd, LinkKeys* keys);
  // "; 1003 connections refused, the first 5: ..." for the timeout message ("" if none).
  std::string RejectionNote() const;

 private:
  struct Pending;
  enum class Outcome { kOpen, kAccepted, kClosed };

  void AcceptSome();
  void MakeRoomFor(const std::string& host);
  Outcome Serve(Pending& pending);
  Outcome ReadFrames(Pending& pending);
  Outcome Flush(Pending& pending);
  void ExpireOld();
  void Drop(size_t index, const std::string& why);
  void Refused(const std::string& why);
  int PollMillis(const Deadline& deadline) const;

  const Listener& listener_;
  const JobIdentity& me_;
  int expected_rank_;
  double hello_seconds_, handshake_seconds_;
  std::vector<Pending> pending_;  // oldest first
  Fd accepted_;
  LinkKeys accepted_keys_;
  size_t refused_ = 0;
  std::vector<std::string> listed_;
};

}  // namespace caffeonspark::comm
