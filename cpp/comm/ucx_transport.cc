#include "comm/ucx_transport.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "comm/abort_request.h"
#include "comm/connect_transport.h"
#include "comm/frame_writer.h"
#include "comm/libucp.h"
#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

constexpr uint32_t kAbortTimeoutFlag = 1;
constexpr uint32_t kUcxSetupVersion = 1;
constexpr size_t kMaxControlPayload = 64 * 1024;
constexpr size_t kMaxNoticeText = 4000;
constexpr int kTokenShift = 24;
constexpr ucp_tag_t kTokenMask = ~((ucp_tag_t{1} << kTokenShift) - 1);
constexpr uint32_t kSeqBits = 20;
constexpr uint32_t kSeqMask = (1u << kSeqBits) - 1;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// What a UCX print function writes, as a string.
template <typename Print>
std::string Printed(Print print) {
  char* text = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&text, &size);
  if (stream == nullptr) return "";
  print(stream);
  fclose(stream);
  std::string out(text, size);
  free(text);
  return out;
}

// The "tl/dev" names after "-- " on the resource lines of ucp_context_print_info.
std::vector<std::string> ResourceNames(const std::string& info) {
  std::vector<std::string> names;
  std::istringstream lines(info);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("resource") == std::string::npos) continue;
    const size_t at = line.find("-- ");
    if (at != std::string::npos) names.push_back(line.substr(at + 3));
  }
  return names;
}

bool IsRdma(const std::string& resource) {
  const std::string tl = resource.substr(0, resource.find('/'));
  return tl.rfind("rc", 0) == 0 || tl.rfind("ud", 0) == 0 || tl.rfind("dc", 0) == 0;
}

// The transports the lanes of an endpoint use ("tcp/lo.0"), from ucp_ep_print_info.
std::string LaneTransports(const std::string& info) {
  std::set<std::string> seen;
  std::vector<std::string> names;
  std::istringstream lines(info);
  for (std::string line; std::getline(lines, line);) {
    const size_t lane = line.find("lane[");
    if (lane == std::string::npos) continue;
    const size_t colon = line.find(':', line.find("]:", lane) + 2);
    if (colon == std::string::npos) continue;
    const size_t start = colon + 1, end = line.find(' ', start);
    std::string name = line.substr(start, end == std::string::npos ? end : end - start);
    if (!name.empty() && seen.insert(name).second) names.push_back(name);
  }
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

// ---- the UCP context and worker -----------------------------------------------------

class UcxSession {
 public:
  explicit UcxSession(const UcxOptions& options) : lib(LibUcp::Get()) {
    ucp_config_t* config = nullptr;
    Check(lib.config_read(nullptr, nullptr, &config), "ucp_config_read");
    if (!options.tls.empty()) {
      const ucs_status_t status = lib.config_modify(config, "TLS", options.tls.c_str());
      if (status != UCS_OK) lib.config_release(config);
      COS_CHECK(status == UCS_OK, ConfigError, "UCX refused TLS='", options.tls, "': ",
                lib.status_string(status));
    }
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
    const ucs_status_t status = lib.Init(&params, config, &context);
    lib.config_release(config);
    Check(status, "ucp_init");
    ucp_worker_params_t worker_params{};
    worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    worker_params.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // one caller at a time
    const ucs_status_t made = lib.worker_create(context, &worker_params, &worker);
    if (made != UCS_OK) lib.cleanup(context);
    Check(made, "ucp_worker_create");
    const ucs_status_t got = lib.worker_get_efd(worker, &efd);
    if (got != UCS_OK) {
      lib.worker_destroy(worker);
      lib.cleanup(context);
    }
    Check(got, "ucp_worker_get_efd");
    resources = ResourceNames(Printed([&](FILE* f) { lib.context_print_info(context, f); }));
  }
  ~UcxSession() {
    lib.worker_destroy(worker);
    lib.cleanup(context);
  }
  UcxSession(const UcxSession&) = delete;
  UcxSession& operator=(const UcxSession&) = delete;

  void Check(ucs_status_t status, const char* what) const {
    COS_CHECK(status == UCS_OK, CommError, "UCX ", what, " failed: ", lib.status_string(status));
  }

  const LibUcp& lib;
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  int efd = -1;
  std::vector<std::string> resources;
};

bool UcxBuilt() { return true; }

std::shared_ptr<UcxSession> OpenUcxSession(const UcxOptions& options) {
  return std::make_shared<UcxSession>(options);
}

std::string UcxResources(const UcxSession& session) {
  std::string out;
  for (const std::string& name : session.resources) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

bool UcxHasRdma(const UcxSession& session) {
  return std::any_of(session.resources.begin(), session.resources.end(), IsRdma);
}

// ---- the transport --------------------------------------------------------------------

namespace {

class UcxTransport final : public Transport {
 public:
  UcxTransport(std::shared_ptr<UcxSession> session, RingSockets ring, JobIdentity me,
               std::vector<std::string> addresses, TcpOptions tcp, UcxOptions ucx);
  ~UcxTransport() override;
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  int rank() const override { return me_.rank; }
  int world_size() const override { return me_.world_size; }
  std::string PeerName(int rank) const override { return RankName(rank, addresses_); }
  std::string Describe() const override { return describe_; }
  void BeginCollective(Op op) override;
  Request PostSend(int peer, const void* data, size_t bytes) override;
  Request PostRecv(int peer, void* data, size_t bytes) override;
  void Wait(Request request) override;
  void WaitAll() override;
  size_t max_message_bytes() const override { return tcp_.max_frame_bytes; }
  void Idle(double seconds) override;
  double heartbeat_seconds() const override { return heartbeat_; }
  void Abort(const std::string& reason) override;
  void RequestAbort(const std::string& reason) override;
  void Close() override;
  bool failed() const override { return failed_; }
  void RegisterBuffer(const void* data, size_t bytes) override;
  void UnregisterBuffer(const void* data) override;

 private:
  // One posted send or receive; UCX's callbacks fill it (user_data), so it must not move:
  // the deques only grow at the back and shrink at the front.
  struct Slot {
    void* request = nullptr;
    bool done = false, checked = false;
    ucs_status_t status = UCS_OK;
    ucp_tag_t tag = 0;
    size_t length = 0, expected = 0;
    uint16_t op = 0;
    uint32_t seq = 0;
  };
  // A control connection (the authenticated TCP socket to one neighbour).
  struct Link {
    int peer = -1;
    Fd fd;
    std::unique_ptr<FrameWriter> writer;
    std::string in;  // control bytes read, not yet parsed
    Clock::time_point last_heard, interest_since;
    bool said_bye = false;
    uint32_t bye_seq = 0;  // the last collective the peer began before its goodbye
  };
  enum Side { kLeft = 0, kRight = 1 };
  struct Registration {
    size_t bytes;
    ucp_mem_h memh;
  };

  static void OnSend(void* request, ucs_status_t status, void* user_data);
  static void OnRecv(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info,
                     void* user_data);
  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);

  void ExchangeAddresses(RingSockets& ring);
  ucp_mem_h FindRegistration(const void* data, size_t bytes) const;
  bool HasUserWork(const Link& link) const;
  bool SlotDone(const std::deque<Slot>& slots, uint64_t base, uint64_t index) const;
  void Progress(Clock::time_point wake_by);
  void DriveUcx();
  void Reap();
  void CheckReceive(const Slot& slot);
  void UcxBroke(Link& link, ucs_status_t status, const std::string& what);
  void ReadControl(Link& link);
  void HandleFrame(Link& link, const FrameHeader& header, const std::string& payload);
  void LinkBroke(Link& link, int error);
  void SendHeartbeats(Clock::time_point now);
  void CheckLinks(Clock::time_point now);
  std::string During() const;
  std::string When() const;
  [[noreturn]] void Fail(bool timeout, const std::string& text, int reporter, const Link* from);
  void NotifyPeers(bool timeout, const std::string& text, int reporter, const Link* except);
  void CloseLinks();
  void AbandonSends();
  // A peer closed its communicator while this rank has work with it: finish or fail.
  void PeerLeft(Link& link);
  void CloseEndpoint(bool force, const Deadline& linger);
  void CheckUsable() const;
  void TakeAbortRequest();
  void AbortLocked(const std::string& reason);
  void UnregisterLocked(const void* data);
  void StartProgressThread();
  void StopProgressThread();
  void ProgressThread();

  // The caller's hold on the worker for one public call (see "Progress thread" in the
  // header): announces itself, so the progress thread lets go at its next chance.
  class CallerLock {
   public:
    explicit CallerLock(UcxTransport& transport) : transport_(transport) {
      transport_.callers_waiting_.fetch_add(1);
      transport_.worker_mutex_.lock();
      transport_.callers_waiting_.fetch_sub(1);
    }
    ~CallerLock() {
      transport_.caller_left_at_.store(Clock::now().time_since_epoch().count());
      transport_.worker_mutex_.unlock();
      transport_.worker_turn_.notify_all();
    }
    CallerLock(const CallerLock&) = delete;
    CallerLock& operator=(const CallerLock&) = delete;

   private:
    UcxTransport& transport_;
  };

  std::shared_ptr<UcxSession> session_;
  const LibUcp& lib_;
  JobIdentity me_;
  std::vector<std::string> addresses_;
  TcpOptions tcp_;
  UcxOptions ucx_;
  double heartbeat_ = 1;
  Link links_[2];
  ucp_ep_h ep_ = nullptr;             // to the right neighbour (data goes out here)
  ucp_tag_t token_in_ = 0, token_out_ = 0;
  std::atomic<int> ep_error_{UCS_OK};  // set by OnEndpointError
  std::deque<Slot> sends_, recvs_;
  uint64_t sends_base_ = 0, recvs_base_ = 0;  // request index of the front slot
  size_t sends_open_ = 0, recvs_open_ = 0;    // slots not completed yet
  uint64_t completions_ = 0;                  // requests completed so far
  bool unflushed_ = false;                    // sends posted since the last flush
  std::map<uintptr_t, Registration> registrations_;
  std::string describe_ = "ucx";
  Op op_ = Op::kNone;
  uint32_t seq_ = 0;
  bool failed_ = false, closed_ = false, error_is_timeout_ = false;
  std::string error_;
  AbortRequest abort_;  // RequestAbort wakes Progress
  // Every UCP call on the worker (and every slot) is made holding worker_mutex_: by the
  // caller for a whole public call (recursive: public calls call each other), or by the
  // progress thread between them. The worker is UCS_THREAD_MODE_SERIALIZED.
  std::recursive_mutex worker_mutex_;
  std::condition_variable_any worker_turn_;  // a caller let go of the worker
  std::atomic<int> callers_waiting_{0};
  std::atomic<Clock::rep> caller_left_at_{0};  // when the caller's last call ended
  std::atomic<bool> stop_progress_{false};
  Fd stop_wake_;  // eventfd: ends the progress thread's sleep at shutdown
  std::thread progress_thread_;
};

UcxTransport::UcxTransport(std::shared_ptr<UcxSession> session, RingSockets ring,
                           JobIdentity me, std::vector<std::string> addresses, TcpOptions tcp,
                           UcxOptions ucx)
    : session_(std::move(session)),
      lib_(session_->lib),
      me_(std::move(me)),
      addresses_(std::move(addresses)),
      tcp_(tcp),
      ucx_(std::move(ucx)) {
  COS_CHECK(ucx_.max_sleep_seconds > 0, ConfigError,
            "comm: ucx.max_sleep_seconds must be positive, got ", ucx_.max_sleep_seconds);
  heartbeat_ = tcp_.heartbeat_seconds > 0 ? tcp_.heartbeat_seconds
                                          : std::min(1.0, tcp_.timeout_seconds / 4);
  for (Link& link : links_) link.writer = std::make_unique<FrameWriter>(-1, false, -1);
  if (me_.world_size == 1) {
    describe_ = "ucx (no peers)";
    return;
  }
  ExchangeAddresses(ring);
  const Clock::time_point now = Clock::now();
  Fd* fds[2] = {&ring.left, &ring.right};
  const int peers[2] = {left(), right()};
  for (int side = 0; side < 2; ++side) {
    Link& link = links_[side];
    ConfigureStream(fds[side]->get(), 0);
    link.fd = std::move(*fds[side]);
    link.peer = peers[side];
    link.writer = std::make_unique<FrameWriter>(link.fd.get(), false, -1);
    link.last_heard = link.interest_since = now;
  }
  // One empty message each way settles UCX's connection setup (wire-up) while every rank
  // is still here to progress its side of it, and proves the endpoints carry data.
  PostRecv(left(), nullptr, 0);
  PostSend(right(), nullptr, 0);
  WaitAll();
  const std::string lanes =
      LaneTransports(Printed([&](FILE* f) { lib_.ep_print_info(ep_, f); }));
  describe_ = Msg("ucx (", lanes.empty() ? "transports not reported" : lanes, ")");
  StartProgressThread();
}

UcxTransport::~UcxTransport() {
  try {
    Close();
  } catch (const std::exception&) {
    // A destructor must not throw; the peers see the connections close.
  }
  StopProgressThread();  // Close stopped it; a failed Close may not have got that far
  for (auto& [begin, registration] : registrations_)
    lib_.mem_unmap(session_->context, registration.memh);
}

void UcxTransport::ExchangeAddresses(RingSockets& ring) {
  const Deadline deadline = Deadline::After(tcp_.timeout_seconds);
  const std::string token = RandomBytes(8);
  uint64_t random = 0;
  std::memcpy(&random, token.data(), sizeof(random));
  token_in_ = (random >> kTokenShift) << kTokenShift;  // 40 random bits in the token field
  ucp_address_t* address = nullptr;
  size_t address_bytes = 0;
  session_->Check(lib_.worker_get_address(session_->worker, &address, &address_bytes),
                  "ucp_worker_get_address");
  PayloadWriter mine;
  mine.U32(kUcxSetupVersion).Bytes(&token_in_, sizeof(token_in_));
  mine.String(std::string(reinterpret_cast<const char*>(address), address_bytes));
  lib_.worker_release_address(session_->worker, address);
  // The left neighbour sends to this rank: it gets this rank's address and token.
  SendSetupFrame(ring.left.get(), FrameKind::kUcxAddress, mine.data(), PeerName(left()),
                 deadline);
  const std::string right_name = PeerName(right());
  const std::string payload =
      ReadSetupFrame(ring.right.get(), FrameKind::kUcxAddress, right_name, deadline);
  PayloadReader in(payload, right_name + " UCX address");
  const uint32_t version = in.U32();
  COS_CHECK(version == kUcxSetupVersion, CommError, right_name, " speaks UCX setup version ",
            version, ", this rank ", kUcxSetupVersion);
  in.Bytes(&token_out_, sizeof(token_out_));
  const std::string remote = in.String(kMaxControlPayload);
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(remote.data());
  params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
  params.err_handler.cb = &UcxTransport::OnEndpointError;
  params.err_handler.arg = this;
  const ucs_status_t status = lib_.ep_create(session_->worker, &params, &ep_);
  COS_CHECK(status == UCS_OK, CommError, "UCX cannot reach ", right_name, ": ",
            lib_.status_string(status), " (UCX resources here: ", UcxResources(*session_), ")");
}

// ---- memory registration -----------------------------------------------------------

void UcxTransport::RegisterBuffer(const void* data, size_t bytes) {
  CallerLock hold(*this);
  if (bytes == 0 || failed_ || closed_) return;
  const auto begin = reinterpret_cast<uintptr_t>(data);
  auto found = registrations_.find(begin);
  if (found != registrations_.end()) {
    if (found->second.bytes == bytes) return;
    UnregisterLocked(data);
  }
  if (static_cast<int>(registrations_.size()) >= ucx_.max_registrations) return;
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = const_cast<void*>(data);
  params.length = bytes;
  ucp_mem_h memh = nullptr;
  if (lib_.mem_map(session_->context, &params, &memh) != UCS_OK) return;  // UCX registers later
  registrations_[begin] = Registration{bytes, memh};
}

void UcxTransport::UnregisterBuffer(const void* data) {
  CallerLock hold(*this);
  UnregisterLocked(data);
}

void UcxTransport::UnregisterLocked(const void* data) {
  auto found = registrations_.find(reinterpret_cast<uintptr_t>(data));
  if (found == registrations_.end()) return;
  lib_.mem_unmap(session_->context, found->second.memh);
  registrations_.erase(found);
}

ucp_mem_h UcxTransport::FindRegistration(const void* data, size_t bytes) const {
  if (bytes == 0 || registrations_.empty()) return nullptr;
  const auto begin = reinterpret_cast<uintptr_t>(data);
  auto after = registrations_.upper_bound(begin);
  if (after == registrations_.begin()) return nullptr;
  const auto& [start, registration] = *std::prev(after);
  return begin + bytes <= start + registration.bytes ? registration.memh : nullptr;
}

// ---- posting and waiting -------------------------------------------------------------

void UcxTransport::CheckUsable() const {
  if (failed_) {
    if (error_is_timeout_) throw PeerTimeout(error_);
    throw CommError(error_);
  }
  COS_CHECK(!closed_, CommError, PeerName(me_.rank), ": the communicator is closed");
}

void UcxTransport::BeginCollective(Op op) {
  CallerLock hold(*this);
  TakeAbortRequest();
  CheckUsable();
  op_ = op;
  ++seq_;
}

std::string UcxTransport::During() const { return Msg(OpName(op_), " #", seq_); }

std::string UcxTransport::When() const {
  if (seq_ == 0) return "before the first collective";
  const bool busy = sends_open_ > 0 || recvs_open_ > 0;
  return Msg(busy ? "during " : "after ", During());
}

bool UcxTransport::HasUserWork(const Link& link) const {
  return &link == &links_[kLeft] ? recvs_open_ > 0 : sends_open_ > 0;
}

void UcxTransport::OnSend(void* request, ucs_status_t status, void* user_data) {
  auto* slot = static_cast<Slot*>(user_data);
  slot->status = status;
  slot->done = true;
}

void UcxTransport::OnRecv(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info,
                          void* user_data) {
  auto* slot = static_cast<Slot*>(user_data);
  slot->status = status;
  if (info != nullptr) {
    slot->tag = info->sender_tag;
    slot->length = info->length;
  }
  slot->done = true;
}

void UcxTransport::OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  static_cast<UcxTransport*>(arg)->ep_error_.store(status);
}

Transport::Request UcxTransport::PostSend(int peer, const void* data, size_t bytes) {
  CallerLock hold(*this);
  CheckUsable();
  Link& link = links_[kRight];
  COS_CHECK(me_.world_size > 1 && peer == link.peer, InternalError, "UcxTransport sends to ",
            "the right neighbour only (rank ", right(), "), not to rank ", peer);
  if (!link.fd.valid()) {
    Fail(false, Msg(PeerName(peer), " left the job before ", During()), me_.rank, nullptr);
  }
  if (ep_error_.load() != UCS_OK && !link.said_bye) {
    UcxBroke(link, static_cast<ucs_status_t>(ep_error_.load()), "its UCX endpoint");
  }
  if (!HasUserWork(link)) link.interest_since = Clock::now();
  sends_.emplace_back();
  Slot& slot = sends_.back();
  slot.expected = bytes;
  ++sends_open_;
  unflushed_ = true;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &UcxTransport::OnSend;
  param.user_data = &slot;
  if (ucp_mem_h memh = FindRegistration(data, bytes)) {
    param.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
    param.memh = memh;
  }
  const ucp_tag_t tag = token_out_ | (ucp_tag_t{static_cast<uint16_t>(op_) & 0xFu} << kSeqBits) |
                        (seq_ & kSeqMask);
  const ucs_status_ptr_t result = lib_.tag_send_nbx(ep_, data, bytes, tag, &param);
  if (result == nullptr) {
    slot.done = true;
  } else if (UCS_PTR_IS_ERR(result)) {
    slot.done = true;
    slot.status = UCS_PTR_STATUS(result);
  } else {
    slot.request = result;
  }
  return 2 * (sends_base_ + sends_.size() - 1);
}

Transport::Request UcxTransport::PostRecv(int peer, void* data, size_t bytes) {
  CallerLock hold(*this);
  CheckUsable();
  Link& link = links_[kLeft];
  COS_CHECK(me_.world_size > 1 && peer == link.peer, InternalError, "UcxTransport receives ",
            "from the left neighbour only (rank ", left(), "), not from rank ", peer);
  if (!HasUserWork(link)) link.interest_since = Clock::now();
  recvs_.emplace_back();
  Slot& slot = recvs_.back();
  slot.expected = bytes;
  slot.op = static_cast<uint16_t>(op_);
  slot.seq = seq_;
  ++recvs_open_;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                       UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
  param.cb.recv = &UcxTransport::OnRecv;
  param.user_data = &slot;
  if (ucp_mem_h memh = FindRegistration(data, bytes)) {
    param.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
    param.memh = memh;
  }
  const ucs_status_ptr_t result =
      lib_.tag_recv_nbx(session_->worker, data, bytes, token_in_, kTokenMask, &param);
  if (UCS_PTR_IS_ERR(result)) {
    slot.done = true;
    slot.status = UCS_PTR_STATUS(result);
  } else {
    slot.request = result;
  }
  return 2 * (recvs_base_ + recvs_.size() - 1) + 1;
}

bool UcxTransport::SlotDone(const std::deque<Slot>& slots, uint64_t base, uint64_t index) const {
  if (index < base) return true;
  const Slot& slot = slots[index - base];
  return slot.done && slot.checked;
}

void UcxTransport::Wait(Request request) {
  CallerLock hold(*this);
  CheckUsable();
  const uint64_t index = request / 2;
  if (request % 2 == 0) {
    while (!SlotDone(sends_, sends_base_, index)) Progress(Clock::time_point::max());
  } else {
    while (!SlotDone(recvs_, recvs_base_, index)) Progress(Clock::time_point::max());
  }
}

void UcxTransport::WaitAll() {
  CallerLock hold(*this);
  CheckUsable();
  if (unflushed_) {
    // A send UCX completed, or a protocol reply to the peers (a rendezvous ack to the
    // left neighbour), may still sit in this worker's queues until it progresses again,
    // while this rank's next collective runs on another communicator and the peers wait
    // here. The worker flush (every endpoint, the internal ones too) puts every byte on
    // its way before the collective counts as done.
    unflushed_ = false;
    sends_.emplace_back();
    Slot& slot = sends_.back();
    ++sends_open_;
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.send = &UcxTransport::OnSend;
    param.user_data = &slot;
    const ucs_status_ptr_t result = lib_.worker_flush_nbx(session_->worker, &param);
    if (result == nullptr) {
      slot.done = true;
    } else if (UCS_PTR_IS_ERR(result)) {
      slot.done = true;
      slot.status = UCS_PTR_STATUS(result);
    } else {
      slot.request = result;
    }
  }
  while (sends_open_ > 0 || recvs_open_ > 0) Progress(Clock::time_point::max());
}

void UcxTransport::Idle(double seconds) {
  CallerLock hold(*this);
  if (failed_ || closed_) return;
  try {
    Progress(Clock::now() + Seconds(seconds));
  } catch (const CommError&) {
    // Stored in error_; the next collective throws it.
  }
}

// ---- progress ------------------------------------------------------------------------

void UcxTransport::DriveUcx() {
  while (lib_.worker_progress(session_->worker) != 0) {
  }
  Reap();
  // An endpoint error matters while this rank sends: a peer that closes its communicator
  // tears its side down too (its goodbye may come a moment later on the control socket).
  const int status = ep_error_.load();
  if (status != UCS_OK && sends_open_ > 0 && links_[kRight].fd.valid() &&
      !links_[kRight].said_bye) {
    UcxBroke(links_[kRight], static_cast<ucs_status_t>(status), "its UCX endpoint");
  }
}

void UcxTransport::Reap() {
  const Clock::time_point now = Clock::now();
  for (Slot& slot : recvs_) {
    if (!slot.done || slot.checked) continue;
    slot.checked = true;
    --recvs_open_;
    ++completions_;
    links_[kLeft].last_heard = now;
    CheckReceive(slot);
  }
  for (Slot& slot : sends_) {
    if (!slot.done || slot.checked) continue;
    slot.checked = true;
    --sends_open_;
    ++completions_;
    links_[kRight].last_heard = now;
    if (slot.status != UCS_OK) UcxBroke(links_[kRight], slot.status, "a send");
  }
  auto pop = [&](std::deque<Slot>& slots, uint64_t& base) {
    while (!slots.empty() && slots.front().done && slots.front().checked) {
      if (slots.front().request != nullptr) lib_.request_free(slots.front().request);
      slots.pop_front();
      ++base;
    }
  };
  pop(recvs_, recvs_base_);
  pop(sends_, sends_base_);
}

void UcxTransport::CheckReceive(const Slot& slot) {
  Link& link = links_[kLeft];
  const std::string peer = PeerName(link.peer);
  if (slot.status != UCS_OK && slot.status != UCS_ERR_MESSAGE_TRUNCATED) {
    UcxBroke(link, slot.status, "a receive");
  }
  const auto op = static_cast<uint16_t>((slot.tag >> kSeqBits) & 0xFu);
  const uint32_t low = static_cast<uint32_t>(slot.tag) & kSeqMask;
  if (op != slot.op || low != (slot.seq & kSeqMask)) {
    // The sender's full sequence number: the one nearest this rank's with those low bits.
    const int32_t diff = static_cast<int32_t>(((low - slot.seq) & kSeqMask) << (32 - kSeqBits)) >>
                         (32 - kSeqBits);
    Fail(false,
         Msg(peer, " is in ", OpName(static_cast<Op>(op)), " #",
             static_cast<int64_t>(slot.seq) + diff, " while this rank is in ",
             OpName(static_cast<Op>(slot.op)), " #", slot.seq,
             ": every rank must call the same collectives in the same order"),
         me_.rank, &link);
  }
  if (slot.status == UCS_ERR_MESSAGE_TRUNCATED || slot.length != slot.expected) {
    const std::string sent = slot.status == UCS_ERR_MESSAGE_TRUNCATED
                                 ? std::string("more bytes")
                                 : Msg(slot.length, " bytes");
    Fail(false, Msg(peer, " sent ", sent, " where this rank expects ", slot.expected, " in ",
                    OpName(static_cast<Op>(slot.op)), " #", slot.seq,
                    ": the buffers differ in size across ranks"),
         me_.rank, &link);
  }
}

void UcxTransport::UcxBroke(Link& link, ucs_status_t status, const std::string& what) {
  // The peer may have died, or failed and sent its notice: give the control connections a
  // moment, so that every rank names the same culprit and cause.
  const Deadline grace = Deadline::After(std::min(0.25, tcp_.timeout_seconds / 4));
  while (!grace.Expired()) {
    pollfd entries[2];
    Link* polled[2];
    int count = 0;
    for (Link& each : links_) {
      if (!each.fd.valid()) continue;
      entries[count] = pollfd{each.fd.get(), POLLIN, 0};
      polled[count++] = &each;
    }
    if (count == 0 || poll(entries, count, grace.PollMillis()) <= 0) break;
    for (int i = 0; i < count; ++i)
      if (entries[i].revents != 0) ReadControl(*polled[i]);
  }
  Fail(false, Msg("UCX reported '", lib_.status_string(status), "' on ", what, " with ",
                  PeerName(link.peer), ", ", When()),
       me_.rank, &link);
}

void UcxTransport::Progress(Clock::time_point wake_by) {
  TakeAbortRequest();
  for (Link& link : links_) {
    if (HasUserWork(link) && !link.fd.valid()) {
      PeerLeft(link);
      return;
    }
  }
  const uint64_t completed = completions_;
  DriveUcx();
  const Clock::time_point now = Clock::now();
  // A request completed: the caller may be done waiting (heartbeats are due later).
  if (completions_ != completed) {
    SendHeartbeats(now);
    return;
  }
  Clock::time_point next = wake_by;
  pollfd entries[4] = {{abort_.fd(), POLLIN, 0}, {session_->efd, POLLIN, 0}, {}, {}};
  Link* polled[4] = {nullptr, nullptr, nullptr, nullptr};
  int count = 2;
  for (Link& link : links_) {
    if (!link.fd.valid()) continue;
    next = std::min(next, link.writer->last_sent() + Seconds(heartbeat_));
    if (HasUserWork(link)) {
      next = std::min(next, std::max(link.last_heard, link.interest_since) +
                                Seconds(tcp_.timeout_seconds));
    }
    short events = POLLIN;
    if (!link.writer->empty()) events |= POLLOUT;
    entries[count] = pollfd{link.fd.get(), events, 0};
    polled[count++] = &link;
  }
  const bool busy = sends_open_ > 0 || recvs_open_ > 0;
  if (busy) next = std::min(next, now + Seconds(ucx_.max_sleep_seconds));
  // Armed: the event fd fires on any new UCX event. BUSY: events are pending, do not sleep.
  const bool armed = lib_.worker_arm(session_->worker) == UCS_OK;
  timespec sleep{0, 0};
  if (armed && next > now) {
    const auto left =
        std::min<Clock::duration>(next - now, std::chrono::seconds(60));
    const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    sleep.tv_sec = static_cast<time_t>(nanos / 1000000000);
    sleep.tv_nsec = static_cast<long>(nanos % 1000000000);
  }
  const int ready = ppoll(entries, count, &sleep, nullptr);
  if (ready < 0 && errno != EINTR) {
    Fail(false, Msg("poll(): ", ErrnoText(errno)), me_.rank, nullptr);
  }
  for (int i = 0; i < count && ready > 0; ++i) {
    const short got = entries[i].revents;
    if (got == 0) continue;
    if (i == 0) {
      TakeAbortRequest();
      continue;
    }
    if (i == 1) continue;  // UCX: progressed below
    Link& link = *polled[i];
    if ((got & (POLLOUT | POLLERR | POLLHUP)) && link.fd.valid() && !link.writer->empty() &&
        !link.writer->WriteNow()) {
      LinkBroke(link, link.writer->error());
    }
    if ((got & (POLLIN | POLLERR | POLLHUP)) && link.fd.valid()) ReadControl(link);
  }
  DriveUcx();
  const Clock::time_point after = Clock::now();
  SendHeartbeats(after);
  CheckLinks(after);
}

// ---- the progress thread -------------------------------------------------------------

void UcxTransport::StartProgressThread() {
  stop_wake_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  COS_CHECK(stop_wake_.valid(), CommError, "eventfd(): ", ErrnoText(errno));
  progress_thread_ = std::thread([this] { ProgressThread(); });
}

void UcxTransport::StopProgressThread() {
  if (!progress_thread_.joinable()) return;
  {
    // Under the lock: the thread is either sleeping in poll (the eventfd wakes it) or
    // between its flag check and its next lock (it checks the flag again there).
    std::lock_guard<std::recursive_mutex> lock(worker_mutex_);
    stop_progress_.store(true);
  }
  worker_turn_.notify_all();
  const uint64_t one = 1;
  if (write(stop_wake_.get(), &one, sizeof(one)) < 0) {
    // The counter is saturated: a wake-up is pending anyway.
  }
  progress_thread_.join();
}

void UcxTransport::ProgressThread() {
  // Between the caller's calls, UCX traffic for this worker (a peer's data, a rendezvous
  // reply, a wire-up message) is progressed here, so peers never wait on this rank's idle
  // worker while it runs other work (another communicator). Never throws: completions are
  // only recorded in their slots (the callbacks); the caller reaps and judges them.
  constexpr double kQuietSleep = 0.1;   // longest sleep with nothing in flight
  constexpr double kActiveWindow = 0.2; // after traffic, sleep at most max_sleep_seconds
  constexpr int kProgressBurst = 64;    // worker_progress calls per turn on the worker
  Clock::time_point last_active = Clock::now();
  while (true) {
    bool progressed = false, armed = false, caller_busy = false;
    {
      std::unique_lock<std::recursive_mutex> lock(worker_mutex_);
      // A caller that wants the worker goes first.
      worker_turn_.wait(lock,
                        [&] { return callers_waiting_.load() == 0 || stop_progress_.load(); });
      if (stop_progress_.load()) return;
      // A caller between the calls of one collective progresses the worker itself a moment
      // later: taking turns with it costs more than it brings.
      const Clock::time_point left_at{Clock::duration(caller_left_at_.load())};
      caller_busy = Clock::now() - left_at < Seconds(ucx_.max_sleep_seconds);
      for (int i = 0; !caller_busy && i < kProgressBurst; ++i) {
        if (lib_.worker_progress(session_->worker) == 0) break;
        progressed = true;
      }
      if (progressed || sends_open_ > 0 || recvs_open_ > 0 || unflushed_)
        last_active = Clock::now();
      armed = !progressed && !caller_busy && lib_.worker_arm(session_->worker) == UCS_OK;
    }
    if (progressed) {
      std::this_thread::yield();  // more may follow at once; a waiting caller goes first
      continue;
    }
    // Armed: the event fd fires on any new UCX event. Not armed (BUSY: events are pending
    // but progress found none yet; or the caller was just here): only a short sleep. Some
    // UCX transports miss wake-ups (see the header): the sleep is bounded either way.
    const bool recent = SecondsBetween(last_active, Clock::now()) < kActiveWindow;
    const double sleep = armed && !recent ? kQuietSleep : ucx_.max_sleep_seconds;
    pollfd entries[2] = {{stop_wake_.get(), POLLIN, 0}, {session_->efd, POLLIN, 0}};
    const int ready =
        poll(entries, armed ? 2 : 1, std::max(1, static_cast<int>(sleep * 1000)));
    if (ready > 0 && entries[0].revents != 0) return;
  }
}

// ---- control frames ------------------------------------------------------------------

void UcxTransport::ReadControl(Link& link) {
  char buffer[4096];
  while (link.fd.valid()) {
    const ssize_t got = recv(link.fd.get(), buffer, sizeof(buffer), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (got <= 0) {
      LinkBroke(link, got == 0 ? 0 : errno);
      return;
    }
    link.last_heard = Clock::now();
    link.in.append(buffer, static_cast<size_t>(got));
    while (link.in.size() >= kFrameHeaderBytes) {
      const FrameHeader header = DecodeHeader(reinterpret_cast<const uint8_t*>(link.in.data()));
      const std::string peer = PeerName(link.peer);
      if (header.magic != kFrameMagic) {
        Fail(false, Msg(peer, " sent bytes that are not a caffeonspark frame (bad magic)"),
             me_.rank, &link);
      }
      if (header.length > kMaxControlPayload) {
        Fail(false, Msg(peer, " sent a ", KindName(header.kind), " frame of ", header.length,
                        " bytes on its control connection"),
             me_.rank, &link);
      }
      if (link.in.size() < kFrameHeaderBytes + header.length) break;
      const std::string payload = link.in.substr(kFrameHeaderBytes, header.length);
      link.in.erase(0, kFrameHeaderBytes + header.length);
      HandleFrame(link, header, payload);
    }
  }
}

void UcxTransport::HandleFrame(Link& link, const FrameHeader& header, const std::string& payload) {
  switch (static_cast<FrameKind>(header.kind)) {
    case FrameKind::kHeartbeat:
      return;
    case FrameKind::kBye:
      link.said_bye = true;
      if (payload.size() >= 4) {
        PayloadReader reader(payload, PeerName(link.peer) + " goodbye");
        link.bye_seq = reader.U32();
      }
      return;
    case FrameKind::kAbort: {
      uint32_t flags = 0, reporter = 0;
      std::string text;
      try {
        PayloadReader reader(payload, PeerName(link.peer) + " abort notice");
        flags = reader.U32();
        reporter = reader.U32();
        text = reader.String(kMaxControlPayload);
      } catch (const CommError& error) {
        Fail(false, error.what(), me_.rank, &link);
      }
      Fail((flags & kAbortTimeoutFlag) != 0, text, static_cast<int>(reporter), &link);
    }
    default:
      Fail(false, Msg(PeerName(link.peer), " sent an unexpected ", KindName(header.kind),
                      " frame (kind ", header.kind, ") on its control connection"),
           me_.rank, &link);
  }
}

void UcxTransport::LinkBroke(Link& link, int error) {
  link.writer->Clear();
  if (link.said_bye) {
    link.fd.Reset();  // the peer left on purpose; only a later use of this link is an error
    return;
  }
  const std::string how =
      error == 0 ? "closed the connection" : Msg("broke the connection (", ErrnoText(error), ")");
  const std::string text = Msg(PeerName(link.peer), " ", how, " without saying goodbye, ",
                               When(), " (its process died or was killed?)");
  link.fd.Reset();
  // Its notice may be on the way round the ring from the other side (see TcpTransport).
  Link& other = &link == &links_[kLeft] ? links_[kRight] : links_[kLeft];
  const Deadline grace = Deadline::After(std::min(0.25, tcp_.timeout_seconds / 4));
  while (other.fd.valid() && !grace.Expired()) {
    pollfd entry{other.fd.get(), POLLIN, 0};
    if (poll(&entry, 1, grace.PollMillis()) > 0) ReadControl(other);
  }
  Fail(false, text, me_.rank, &link);
}

void UcxTransport::SendHeartbeats(Clock::time_point now) {
  for (Link& link : links_) {
    if (!link.fd.valid() || !link.writer->empty()) continue;
    if (SecondsBetween(link.writer->last_sent(), now) < heartbeat_) continue;
    link.writer->Push(OutFrame::Control(FrameKind::kHeartbeat, std::string()));
    if (link.writer->error() != 0) LinkBroke(link, link.writer->error());
  }
}

void UcxTransport::CheckLinks(Clock::time_point now) {
  for (Link& link : links_) {
    if (!HasUserWork(link)) continue;
    if (!link.fd.valid()) {
      PeerLeft(link);
      continue;
    }
    const Clock::time_point since = std::max(link.last_heard, link.interest_since);
    if (SecondsBetween(since, now) >= tcp_.timeout_seconds) {
      Fail(true, Msg(PeerName(link.peer), " sent nothing for ", SecondsBetween(since, now),
                     " s while ", PeerName(me_.rank), " waited for it in ", During(),
                     " (stalled, or unreachable; deadline ", tcp_.timeout_seconds, " s)"),
           me_.rank, nullptr);
    }
  }
}

// ---- failure, abort and close --------------------------------------------------------

void UcxTransport::Fail(bool timeout, const std::string& text, int reporter, const Link* from) {
  if (!failed_) {
    failed_ = true;
    error_is_timeout_ = timeout;
    error_ = reporter == me_.rank ? text : Msg(text, " [reported by ", PeerName(reporter), "]");
    NotifyPeers(timeout, text, reporter, from);
    CloseLinks();
  }
  CheckUsable();
  throw InternalError("unreachable");
}

void UcxTransport::NotifyPeers(bool timeout, const std::string& text, int reporter,
                               const Link* except) {
  PayloadWriter notice;
  notice.U32(timeout ? kAbortTimeoutFlag : 0).U32(static_cast<uint32_t>(reporter));
  notice.String(text.substr(0, kMaxNoticeText));
  const Deadline linger = Deadline::After(std::min(1.0, tcp_.timeout_seconds / 2));
  for (Link& link : links_) {
    if (&link == except || !link.fd.valid() || link.said_bye) continue;
    link.writer->FinishWith(OutFrame::Control(FrameKind::kAbort, notice.data()), linger);
  }
}

void UcxTransport::CloseEndpoint(bool force, const Deadline& linger) {
  if (ep_ == nullptr) return;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  ucs_status_ptr_t closing = lib_.ep_close_nbx(ep_, &param);
  ep_ = nullptr;
  if (closing == nullptr || UCS_PTR_IS_ERR(closing)) return;
  while (lib_.request_check_status(closing) == UCS_INPROGRESS && !linger.Expired())
    lib_.worker_progress(session_->worker);
  lib_.request_free(closing);  // one still in progress completes inside UCX, unreported
}

void UcxTransport::CloseLinks() {
  // Receives are cancelled and the endpoint closed at once: after this no UCX operation may
  // still write into (or read from) a caller's buffer.
  for (Slot& slot : recvs_) {
    if (!slot.done && slot.request != nullptr) lib_.request_cancel(session_->worker, slot.request);
  }
  CloseEndpoint(true, Deadline::After(1.0));
  const Deadline drain = Deadline::After(1.0);
  auto open = [&] {
    for (const auto* slots : {&sends_, &recvs_})
      for (const Slot& slot : *slots)
        if (!slot.done) return true;
    return false;
  };
  while (open() && !drain.Expired()) lib_.worker_progress(session_->worker);
  // Freed requests report nothing more (no callback touches a slot after this), so the
  // slots can go; one still open after the drain finishes inside UCX.
  for (auto* slots : {&sends_, &recvs_}) {
    for (Slot& slot : *slots) {
      if (slot.request != nullptr) lib_.request_free(slot.request);
    }
    slots->clear();
  }
  sends_open_ = recvs_open_ = 0;
  for (Link& link : links_) {
    link.writer->Clear();
    link.fd.Reset();
  }
}

void UcxTransport::PeerLeft(Link& link) {
  // A peer's goodbye follows the flush of all it sent: that data is here already, UCX may
  // only need to progress to hand it over.
  const Deadline grace = Deadline::After(std::min(0.5, tcp_.timeout_seconds / 4));
  while (HasUserWork(link) && !grace.Expired()) {
    lib_.worker_progress(session_->worker);
    Reap();
  }
  if (!HasUserWork(link)) return;
  if (&link == &links_[kRight] && link.said_bye && link.bye_seq >= seq_) {
    // It finished this collective, so it holds all this rank sent for it: what UCX still
    // reports open here is only its acknowledgement, lost with the closed worker.
    AbandonSends();
    return;
  }
  Fail(false, Msg(PeerName(link.peer), " left the job (closed its communicator) while this ",
                  "rank needs it for ", During()),
       me_.rank, nullptr);
}

void UcxTransport::AbandonSends() {
  for (Slot& slot : sends_) {
    if (slot.request != nullptr) lib_.request_free(slot.request);  // no callback after this
  }
  sends_base_ += sends_.size();
  sends_.clear();
  sends_open_ = 0;
  ++completions_;
}

void UcxTransport::Abort(const std::string& reason) {
  CallerLock hold(*this);
  AbortLocked(reason);
}

void UcxTransport::AbortLocked(const std::string& reason) {
  if (failed_ || closed_) return;
  failed_ = true;
  error_ = Msg(PeerName(me_.rank), " aborted: ", reason);
  NotifyPeers(false, error_, me_.rank, nullptr);
  CloseLinks();
}

void UcxTransport::RequestAbort(const std::string& reason) { abort_.Request(reason); }

void UcxTransport::TakeAbortRequest() {
  if (const auto reason = abort_.Take()) {
    AbortLocked(*reason);
    CheckUsable();
  }
}

void UcxTransport::Close() {
  // The caller progresses the worker itself from here to the end (goodbye, endpoint close).
  StopProgressThread();
  CallerLock hold(*this);
  if (closed_) return;
  closed_ = true;
  if (failed_ || me_.world_size == 1) {
    CloseLinks();
    return;
  }
  // Every collective ended with a worker flush, so what this rank sent is on its way
  // before the goodbye; the goodbye goes before the endpoint closes, so that the peer
  // knows the teardown it may see from UCX is on purpose.
  const Deadline linger = Deadline::After(std::min(0.2, tcp_.timeout_seconds / 2));
  PayloadWriter bye;
  bye.U32(seq_);
  for (Link& link : links_) {
    if (!link.fd.valid()) continue;
    link.writer->FinishWith(OutFrame::Control(FrameKind::kBye, bye.data()), linger);
  }
  // An endpoint UCX already reported broken (the peer left first) has nothing to flush.
  CloseEndpoint(ep_error_.load() != UCS_OK,
                Deadline::After(std::min(1.0, tcp_.timeout_seconds / 2)));
  for (Link& link : links_) {
    if (!link.fd.valid()) continue;
    shutdown(link.fd.get(), SHUT_WR);
    char sink[4096];
    while (recv(link.fd.get(), sink, sizeof(sink), 0) > 0) {
    }
  }
  CloseLinks();
}

}  // namespace

std::unique_ptr<Transport> MakeUcxTransport(std::shared_ptr<UcxSession> session,
                                            RingSockets ring, JobIdentity me,
                                            std::vector<std::string> addresses, TcpOptions tcp,
                                            UcxOptions ucx) {
  COS_CHECK(session != nullptr, InternalError, "MakeUcxTransport without a UCX session");
  return std::make_unique<UcxTransport>(std::move(session), std::move(ring), std::move(me),
                                        std::move(addresses), tcp, std::move(ucx));
}

}  // namespace caffeonspark::comm
