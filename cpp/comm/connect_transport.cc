#include "comm/connect_transport.h"

#include <vector>

#include "comm/ring_connect.h"
#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

constexpr uint32_t kMaxSetupFrame = 64 * 1024;

struct Vote {
  bool able = true;
  int first_unable = 0;
  std::string why;
};

std::string EncodeVote(const Vote& vote) {
  PayloadWriter out;
  out.U32(vote.able ? 1 : 0).U32(static_cast<uint32_t>(vote.first_unable)).String(vote.why);
  return out.data();
}

Vote DecodeVote(const std::string& payload, const std::string& who) {
  PayloadReader in(payload, who + " transport vote");
  Vote vote;
  vote.able = in.U32() != 0;
  vote.first_unable = static_cast<int>(in.U32());
  vote.why = in.String(4096);
  return vote;
}

// This rank's own vote: can it run UCX (with RDMA, for "auto")? Opens the session it would use.
Vote MyVote(const UcxOptions& ucx, const JobIdentity& me, std::shared_ptr<UcxSession>* session) {
  Vote vote;
  vote.first_unable = me.world_size;
  try {
    *session = OpenUcxSession(ucx);
  } catch (const ConfigError& error) {
    if (ucx.transport == "ucx") throw;
    vote.able = false;
    vote.why = error.what();
  } catch (const CommError& error) {
    if (ucx.transport == "ucx") throw;
    vote.able = false;
    vote.why = error.what();
  }
  if (vote.able && ucx.transport == "auto" && !UcxHasRdma(**session)) {
    vote.able = false;
    vote.why = Msg("no RDMA transport in UCX (it has ", UcxResources(**session), ")");
  }
  if (!vote.able) {
    vote.first_unable = me.rank;
    session->reset();
  }
  return vote;
}

// Two laps round the ring from rank 0: every rank ANDs its vote in, then rank 0 sends the
// outcome round. Every rank returns the same vote.
Vote Agree(Vote mine, RingSockets& ring, const JobIdentity& me,
           const std::vector<std::string>& addresses, const Deadline& deadline) {
  const int world = me.world_size;
  const int left = (me.rank + world - 1) % world, right = (me.rank + 1) % world;
  const std::string left_name = RankName(left, addresses), right_name = RankName(right, addresses);
  auto merge = [&](const Vote& from_left) {
    if (!from_left.able || mine.able) return from_left;
    return mine;
  };
  if (me.rank == 0) {
    SendSetupFrame(ring.right.get(), FrameKind::kTransportVote, EncodeVote(mine), right_name,
                   deadline);
    Vote all = DecodeVote(
        ReadSetupFrame(ring.left.get(), FrameKind::kTransportVote, left_name, deadline),
        left_name);
    SendSetupFrame(ring.right.get(), FrameKind::kTransportVote, EncodeVote(all), right_name,
                   deadline);
    return all;
  }
  Vote so_far = DecodeVote(
      ReadSetupFrame(ring.left.get(), FrameKind::kTransportVote, left_name, deadline), left_name);
  SendSetupFrame(ring.right.get(), FrameKind::kTransportVote, EncodeVote(merge(so_far)),
                 right_name, deadline);
  Vote all = DecodeVote(
      ReadSetupFrame(ring.left.get(), FrameKind::kTransportVote, left_name, deadline), left_name);
  if (right != 0) {
    SendSetupFrame(ring.right.get(), FrameKind::kTransportVote, EncodeVote(all), right_name,
                   deadline);
  }
  return all;
}

}  // namespace

void SendSetupFrame(int fd, FrameKind kind, const std::string& payload, const std::string& who,
                    const Deadline& deadline) {
  FrameHeader header;
  header.kind = static_cast<uint16_t>(kind);
  header.length = static_cast<uint32_t>(payload.size());
  uint8_t bytes[kFrameHeaderBytes];
  EncodeHeader(header, bytes);
  SendAll(fd, bytes, sizeof(bytes), who, deadline);
  SendAll(fd, payload.data(), payload.size(), who, deadline);
}

std::string ReadSetupFrame(int fd, FrameKind kind, const std::string& who,
                           const Deadline& deadline) {
  uint8_t bytes[kFrameHeaderBytes];
  RecvAll(fd, bytes, sizeof(bytes), who, deadline);
  const FrameHeader header = DecodeHeader(bytes);
  COS_CHECK(header.magic == kFrameMagic, CommError, who,
            " sent bytes that are not a caffeonspark frame (bad magic) during the transport setup");
  COS_CHECK(header.kind == static_cast<uint16_t>(kind), CommError, who, " sent a ",
            KindName(header.kind), " frame where a ", KindName(static_cast<uint16_t>(kind)),
            " frame belongs: every rank must ask for the same transport (CommOptions.transport, "
            "-connection) and the same encryption");
  COS_CHECK(header.length <= kMaxSetupFrame, CommError, who, " sent a ", KindName(header.kind),
            " frame of ", header.length, " bytes, over the limit of ", kMaxSetupFrame);
  std::string payload(header.length, '\0');
  RecvAll(fd, payload.data(), payload.size(), who, deadline);
  return payload;
}

ConnectedTransport ConnectTransport(Listener listener, JobIdentity me,
                                    std::vector<std::string> addresses, TcpOptions tcp,
                                    UcxOptions ucx) {
  const std::string& kind = ucx.transport;
  COS_CHECK(kind == "tcp" || kind == "ucx" || kind == "auto", ConfigError,
            "comm: transport must be 'tcp', 'ucx' or 'auto', got '", kind, "'");
  ConnectedTransport out;
  if (kind == "tcp" || (kind == "auto" && tcp.encrypt)) {
    if (kind == "auto") out.note = "encryption asked for: the UCX transport has none";
    out.transport = std::make_unique<TcpTransport>(std::move(listener), std::move(me),
                                                   std::move(addresses), tcp);
    return out;
  }
  COS_CHECK(!tcp.encrypt, ConfigError,
            "comm: the UCX transport does not encrypt; use transport='tcp' (-connection "
            "ethernet) with encryption, or drop encryption");
  COS_CHECK(static_cast<int>(addresses.size()) == me.world_size && me.world_size >= 1,
            ConfigError, "comm: ", addresses.size(), " addresses for a world of ",
            me.world_size, " ranks");
  COS_CHECK(tcp.timeout_seconds > 0, ConfigError, "comm: timeout must be positive, got ",
            tcp.timeout_seconds);
  std::shared_ptr<UcxSession> session;
  Vote mine = MyVote(ucx, me, &session);  // a missing library fails before any peer
  RingSockets ring;
  if (me.world_size > 1) {
    ring = ConnectRing(listener, me, addresses, tcp.timeout_seconds, tcp.hello_seconds,
                       tcp.handshake_seconds);
    const Deadline deadline = Deadline::After(tcp.timeout_seconds);
    const Vote all = Agree(mine, ring, me, addresses, deadline);
    if (!all.able) {
      const std::string where = RankName(all.first_unable, addresses);
      COS_CHECK(kind != "ucx", ConfigError, "comm: transport 'ucx' asked for, but ", where,
                " cannot use it: ", all.why);
      out.note = Msg(where, ": ", all.why);
      session.reset();
      out.transport = std::make_unique<TcpTransport>(std::move(ring), std::move(me),
                                                     std::move(addresses), tcp);
      return out;
    }
  } else {
    listener.Close();
    if (!mine.able) {
      out.note = mine.why;
      out.transport = std::make_unique<TcpTransport>(std::move(ring), std::move(me),
                                                     std::move(addresses), tcp);
      return out;
    }
  }
  out.transport = MakeUcxTransport(std::move(session), std::move(ring), std::move(me),
                                   std::move(addresses), tcp, ucx);
  return out;
}

}  // namespace caffeonspark::comm
