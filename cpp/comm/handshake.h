// The connection handshake: before a ring link carries any tensor, each end proves that it
// holds the job's secret, and both agree on the job id, the world size and who is who.
//
//   connector (rank c)                           acceptor (rank a, the ring's next rank)
//   HELLO {version, job_id, world, c, a, Nc}  ->
//                                             <-  CHALLENGE {Na, HMAC(secret, T("accept"))}
//   PROOF {HMAC(secret, T("connect"))}        ->
//                                             <-  WELCOME            (or REJECT {reason})
//
// with T(label) = label, job_id, world, c, a, Nc, Na (frame.h payload encoding) and Nc, Na
// 32 fresh random bytes each: a proof is bound to both nonces, both ranks and the job, so it
// cannot be replayed on another link or job. Frames longer than 4 KiB, a wrong magic, a
// wrong kind, a job/world/rank mismatch or a wrong MAC end the handshake; the acceptor then
// drops that connection and keeps waiting for the rank it expects (tests/comm/test_faults.py).
// Tests: tests/comm/test_handshake.py.
#pragma once

#include <string>

#include "comm/deadline.h"

namespace caffeonspark::comm {

struct JobIdentity {
  std::string job_id;
  std::string secret;
  int world_size = 1;
  int rank = 0;
};

constexpr uint32_t kHandshakeVersion = 1;
constexpr uint32_t kHandshakeMaxFrame = 4096;

// Runs the connector side on a connected socket; throws CommError (the acceptor cannot
// prove the secret, rejects us, or is not the rank we expect) or PeerTimeout.
void HandshakeAsConnector(int fd, const JobIdentity& me, int acceptor_rank,
                          const std::string& acceptor_name, const Deadline& deadline);

// Runs the acceptor side; true when the connection is rank `expected_rank` of this job and
// proved the secret. Otherwise false with `why` set (the connection should be closed).
bool HandshakeAsAcceptor(int fd, const JobIdentity& me, int expected_rank,
                         const std::string& from, const Deadline& deadline, std::string* why);

// 32 random bytes from the kernel (getrandom).
std::string RandomBytes(size_t bytes);

}  // namespace caffeonspark::comm
