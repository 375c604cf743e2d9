#include "fs/fuse/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "fs/fuse/control_protocol.h"
#include "fs/fuse/process_memory.h"
#include "fs/fuse/reply_buffers.h"
#include "fs/fuse/scrub_protocol.h"

namespace stablefs {

std::string stats_report(const ControlTarget& t) {
  const IoStatsSnapshot s = t.volume->io_stats();
  const BounceDecision& d = t.volume->bounce_decision();
  const SubmitDecision& submit = t.volume->submit_decision();
  const FsHealth health = t.volume->fs().health();
  std::string out = "mountpoint       " + t.mountpoint + "\ndevice           " + t.device + "\nstate            ";
  if (health.shut_down)
    out += "shut down after a failed metadata update (reads are served, changes fail with EIO; unmount and run "
           "stablefs fsck): " + health.shutdown_cause + "\n";
  else
    out += health.read_only ? "read-only\n" : "read-write\n";
  char buf[1536];
  int n = std::snprintf(buf, sizeof buf,
                        "bounce           %s\n"
                        "reason           %s\n"
                        "submission       %s\n"
                        "submit reason    %s\n"
                        "bounced          %llu I/Os, %llu bytes\n"
                        "zero-copy        %llu I/Os, %llu bytes\n"
                        "unaligned copies %llu bytes (requests copied to aligned memory first)\n"
                        "checksum errors  %llu\n"
                        "checksum transients %llu (blocks that mismatched once and matched when read again)\n"
                        "device errors    %llu\n"
                        "range locks      %zu files with I/O in flight or waiting\n",
                        d.bounce ? "yes" : "no (zero-copy)", d.reason.c_str(),
                        submit.mode == IoQueue::Mode::kInline ? "inline (the request's thread makes the system call)"
                                                              : "ring (io_uring, answered by the completion thread)",
                        submit.reason.c_str(),
                        (unsigned long long)s.bounced_ios, (unsigned long long)s.bounced_bytes,
                        (unsigned long long)s.zero_copy_ios, (unsigned long long)s.zero_copy_bytes,
                        (unsigned long long)s.unaligned_copy_bytes, (unsigned long long)s.checksum_failures,
                        (unsigned long long)s.checksum_transients, (unsigned long long)s.device_errors, t.volume->range_lock_files());
  out.append(buf, static_cast<size_t>(std::max(0, std::min<int>(n, sizeof buf - 1))));
  const BouncePool& pool = t.volume->bounce_pool();
  std::snprintf(buf, sizeof buf, "bounce pool      %zu KiB, %zu KiB in use (%llu waits for memory)\n", pool.capacity() >> 10,
                pool.in_use_bytes() >> 10, (unsigned long long)pool.waits());
  out += buf;
  const WriteBehind& behind = t.volume->write_behind_state();
  std::snprintf(buf, sizeof buf, "write-behind     %llu buffered writes answered before the device had them, %llu in flight, %llu failed after the answer\n",
                (unsigned long long)behind.answered_early(), (unsigned long long)behind.in_flight(),
                (unsigned long long)behind.failed_after_answer());
  out += buf;
  if (t.receive) {
    const auto r = [](const std::atomic<uint64_t>& a) { return (unsigned long long)a.load(std::memory_order_relaxed); };
    std::snprintf(buf, sizeof buf, "receive buffers  %llu allocated, %llu in use, bound %llu (%llu waits at the bound)\n",
                  r(t.receive->allocated), r(t.receive->in_use), r(t.receive->bound), r(t.receive->waits));
    out += buf;
    std::snprintf(buf, sizeof buf, "reply buffers    %llu KiB (READ replies in flight, and up to %zu KiB kept for reuse)\n",
                  r(t.receive->reply_bytes) >> 10, ReplyBuffers::kept_bound() >> 10);
    out += buf;
    if (!t.receive->uring_requested.load(std::memory_order_relaxed)) {
      std::snprintf(buf, sizeof buf, "fuse transport   /dev/fuse: %llu requests\n", r(t.receive->device_requests));
    } else {
      std::snprintf(buf, sizeof buf,
                    "fuse transport   io_uring: %llu entries on %llu queues, %llu requests; /dev/fuse: %llu requests\n",
                    r(t.receive->uring_entries), r(t.receive->uring_queues), r(t.receive->uring_requests),
                    r(t.receive->device_requests));
    }
    out += buf;
  }
  if (t.defragmenter) {
    const DefragStats d = t.defragmenter->stats();
    std::snprintf(buf, sizeof buf,
                  "defrag           %s: %llu chunks pending, %llu checked, %llu moved (%llu KiB, from %llu pieces), "
                  "%llu failed, %llu candidates dropped\n",
                  d.automatic ? "automatic" : "on request", (unsigned long long)d.pending_chunks,
                  (unsigned long long)d.checked_chunks, (unsigned long long)d.moved_chunks,
                  (unsigned long long)(d.moved_bytes >> 10), (unsigned long long)d.fragments_before,
                  (unsigned long long)d.failed_chunks, (unsigned long long)d.dropped_candidates);
    out += buf;
  }
  const ProcessMemory mem = process_memory();
  std::snprintf(buf, sizeof buf, "daemon memory    %llu KiB resident, peak %llu KiB\n", (unsigned long long)mem.resident_kib,
                (unsigned long long)mem.peak_kib);
  out += buf;
  return out;
}

namespace {

constexpr size_t kMaxRequestBytes = 64 << 10;
// Chunks one defrag request moves at most (a fraction of a second on a fast device, a few on a
// slow one): other requests, and an unmount, wait no longer than that.
constexpr uint64_t kDefragChunksPerRequest = 64;
constexpr int kRequestTimeoutSeconds = 5;

// Reads one request line from c (bounded in size and time). Empty when none came.
std::string read_request(int c) {
  std::string line;
  char buf[1024];
  while (line.size() < kMaxRequestBytes) {
    const ssize_t n = ::read(c, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
    if (line.find('\n') != std::string::npos) break;
  }
  return line.substr(0, line.find('\n'));
}

bool peer_is_root(int c) {
  ucred cred{};
  socklen_t len = sizeof cred;
  return ::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == 0;
}

nlohmann::json answer(const ControlTarget& t, const std::string& text) {
  Volume& v = *t.volume;
  const nlohmann::json req = nlohmann::json::parse(text, nullptr, false);
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string())
    return control_error(Status::error(EPROTO, "a request is a JSON object with an \"op\""));
  const std::string op = req["op"].get<std::string>();
  if (op == "stats") return control_ok({{"report", stats_report(t)}, {"damaged_files", damaged_files_to_json(v)}});
  if (op == "sync") {
    // What sync(1) and syncfs(2) do not reach: the kernel sends no FUSE_SYNCFS to this server.
    Status st = v.sync();
    return st.ok() ? control_ok() : control_error(st);
  }
  if (op == "remount") {
    if (!t.remount) return control_error(Status::error(EOPNOTSUPP, "this daemon takes no remount requests"));
    Result<RemountSettings> settings = remount_settings_from_json(req);
    if (!settings.ok()) return control_error(settings.status());
    Status st = t.remount(*settings);
    return st.ok() ? control_ok() : control_error(st);
  }
  if (op == "defrag") {
    if (!t.defragmenter) return control_error(Status::error(EOPNOTSUPP, "this daemon runs no defragmenter"));
    uint64_t ino = 0, from = 0;
    if (!get_u64(req, "ino", ino)) return control_error(Status::error(EPROTO, "a defrag request needs \"ino\""));
    (void)get_u64(req, "from", from);
    Result<DefragFileResult> r = t.defragmenter->defragment_file(ino, from, kDefragChunksPerRequest);
    if (!r.ok()) return control_error(r.status());
    return control_ok({{"chunks", r->chunks},
                       {"moved_chunks", r->moved_chunks},
                       {"moved_bytes", r->moved_bytes},
                       {"fragments_before", r->fragments_before},
                       {"failed_chunks", r->failed_chunks},
                       {"done", r->done},
                       {"next", r->next}});
  }
  if (op == "scrub") {
    if (!t.scrubber) return control_error(Status::error(EOPNOTSUPP, "this daemon runs no scrub"));
    Result<nlohmann::json> status = answer_scrub_request(*t.scrubber, req);
    if (!status.ok()) return control_error(status.status());
    return control_ok({{"scrub", *status}, {"damaged_files", damaged_files_to_json(v)}});
  }
  if (op == "map") {
    if (!req.contains("ino") || !req["ino"].is_number_unsigned())
      return control_error(Status::error(EPROTO, "map needs an \"ino\""));
    Result<FileMap> m = file_map(v, req["ino"].get<uint64_t>());
    if (!m.ok()) return control_error(m.status());
    return control_ok({{"map", file_map_to_json(*m)}});
  }
  return control_error(Status::error(EOPNOTSUPP, "unknown request \"" + op + "\""));
}

void serve(int c, const ControlTarget& t) {
  timeval tv{};
  tv.tv_sec = kRequestTimeoutSeconds;
  (void)::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string reply;
  try {
    const nlohmann::json j = peer_is_root(c)
                                 ? answer(t, read_request(c))
                                 : control_error(Status::error(EPERM, "the control socket answers root only"));
    reply = json_text(j, -1) + "\n";
  } catch (const std::bad_alloc&) {
    reply = "{\"ok\":false,\"errno\":12,\"error\":\"out of memory\"}\n";
  }
  for (size_t off = 0; off < reply.size();) {
    const ssize_t n = ::send(c, reply.data() + off, reply.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

struct ControlServer::Impl {
  int fd = -1;
  std::string path;
  std::thread thread;
};

std::unique_ptr<ControlServer> ControlServer::start(ControlTarget target, const std::string& socket_path) {
  auto impl = std::make_unique<Impl>();
  impl->path = socket_path;
  sockaddr_un addr;
  if (!unix_socket_address(impl->path, addr)) return nullptr;
  impl->fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->fd < 0) return nullptr;
  ::unlink(impl->path.c_str());
  // 0600 before it listens: until then a connect is refused anyway.
  if (::bind(impl->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::chmod(impl->path.c_str(), 0600) != 0 ||
      ::listen(impl->fd, 8) != 0) {
    ::close(impl->fd);
    return nullptr;
  }
  int lfd = impl->fd;
  impl->thread = std::thread([lfd, t = std::move(target)] {
    for (;;) {
      int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      serve(c, t);
      ::close(c);
    }
  });
  std::unique_ptr<ControlServer> s(new ControlServer());
  s->impl_ = std::move(impl);
  return s;
}

ControlServer::~ControlServer() {
  ::shutdown(impl_->fd, SHUT_RDWR);  // wakes accept()
  if (impl_->thread.joinable()) impl_->thread.join();
  ::close(impl_->fd);
  ::unlink(impl_->path.c_str());
}

}  // namespace stablefs
