#include "fs/fuse/control_protocol.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace stablefs {

bool get_u64(const nlohmann::json& j, const char* key, uint64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return false;
  out = it->get<uint64_t>();
  return true;
}

namespace {

MapKind kind_from_name(const std::string& s, bool& ok) {
  ok = true;
  if (s == "data") return MapKind::kData;
  if (s == "unwritten") return MapKind::kUnwritten;
  if (s == "hole") return MapKind::kHole;
  ok = false;
  return MapKind::kHole;
}

}  // namespace

bool unix_socket_address(const std::string& path, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json file_map_to_json(const FileMap& m) {
  nlohmann::json extents = nlohmann::json::array();
  for (const MapExtent& e : m.extents) {
    nlohmann::json x = {{"offset", e.offset},
                        {"length", e.length},
                        {"kind", map_kind_name(e.kind)},
                        {"speculative", e.speculative}};
    if (e.kind != MapKind::kHole) x["device_block"] = e.device_block;
    extents.push_back(std::move(x));
  }
  return {{"ino", m.ino}, {"size", m.size}, {"block_size", m.block_size}, {"extents", std::move(extents)}};
}

namespace {
constexpr std::pair<AtimePolicy, const char*> kAtimeNames[] = {
    {AtimePolicy::kNever, "never"}, {AtimePolicy::kRelative, "relative"}, {AtimePolicy::kAlways, "always"}};
}  // namespace

nlohmann::json remount_request(const RemountSettings& settings) {
  const char* atime = "relative";
  for (const auto& [policy, name] : kAtimeNames)
    if (policy == settings.atime) atime = name;
  return {{"op", "remount"}, {"read_only", settings.read_only}, {"atime", atime}, {"dir_atime", settings.dir_atime}};
}

Result<RemountSettings> remount_settings_from_json(const nlohmann::json& request) {
  const Status bad = Status::error(EPROTO, "remount needs \"read_only\", \"atime\" and \"dir_atime\"");
  if (!request.is_object() || !request.contains("read_only") || !request["read_only"].is_boolean() ||
      !request.contains("atime") || !request["atime"].is_string() || !request.contains("dir_atime") ||
      !request["dir_atime"].is_boolean())
    return bad;
  RemountSettings s;
  s.read_only = request["read_only"].get<bool>();
  s.dir_atime = request["dir_atime"].get<bool>();
  const std::string atime = request["atime"].get<std::string>();
  bool known = false;
  for (const auto& [policy, name] : kAtimeNames) {
    if (atime == name) {
      s.atime = policy;
      known = true;
    }
  }
  if (!known) return bad;
  return s;
}

Result<FileMap> file_map_from_json(const nlohmann::json& j) {
  const Status bad = Status::error(EPROTO, "the daemon's extent map is malformed");
  if (!j.is_object()) return bad;
  FileMap m;
  uint64_t bs = 0;
  if (!get_u64(j, "ino", m.ino) || !get_u64(j, "size", m.size) || !get_u64(j, "block_size", bs)) return bad;
  m.block_size = static_cast<uint32_t>(bs);
  auto ext = j.find("extents");
  if (ext == j.end() || !ext->is_array()) return bad;
  for (const nlohmann::json& x : *ext) {
    if (!x.is_object()) return bad;
    MapExtent e;
    auto kind = x.find("kind");
    auto spec = x.find("speculative");
    if (!get_u64(x, "offset", e.offset) || !get_u64(x, "length", e.length) || kind == x.end() ||
        !kind->is_string() || spec == x.end() || !spec->is_boolean())
      return bad;
    bool ok = false;
    e.kind = kind_from_name(kind->get<std::string>(), ok);
    if (!ok || (e.kind != MapKind::kHole && !get_u64(x, "device_block", e.device_block))) return bad;
    e.speculative = spec->get<bool>();
    m.extents.push_back(e);
  }
  return m;
}

nlohmann::json damaged_files_to_json(Volume& v) {
  nlohmann::json files = nlohmann::json::array();
  for (const DamagedFile& f : v.data_errors().files())
    files.push_back({{"ino", f.ino}, {"blocks", f.blocks}, {"first_offset", f.first_offset}});
  return files;
}

std::set<uint64_t> damaged_files_from_reply(const nlohmann::json& reply) {
  std::set<uint64_t> out;
  auto files = reply.find("damaged_files");
  if (files == reply.end() || !files->is_array()) return out;
  for (const nlohmann::json& f : *files)
    if (f.is_object() && f.contains("ino") && f["ino"].is_number_unsigned()) out.insert(f["ino"].get<uint64_t>());
  return out;
}

nlohmann::json control_ok(nlohmann::json fields) {
  fields["ok"] = true;
  return fields;
}

nlohmann::json control_error(const Status& st) {
  return {{"ok", false}, {"errno", st.code()}, {"error", st.message()}};
}

Result<nlohmann::json> control_call(const std::string& socket_path, const nlohmann::json& request,
                                    int timeout_seconds) {
  sockaddr_un addr;
  if (!unix_socket_address(socket_path, addr)) return Status::error(ENAMETOOLONG, "control socket path too long");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::error(errno, std::string("socket: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  timeval tv{};
  tv.tv_sec = timeout_seconds;
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EACCES || errno == EPERM) return Status::error(EACCES, "the daemon's control socket is root's only");
    return Status::error(ECONNREFUSED, "no stablefs daemon answers for this mountpoint");
  }
  const std::string line = json_text(request, -1) + "\n";
  for (size_t off = 0; off < line.size();) {
    const ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::error(ECONNREFUSED, "the stablefs daemon closed its control socket");
    off += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return Status::error(ETIMEDOUT, "the stablefs daemon did not answer within " + std::to_string(timeout_seconds) + " s");
    if (n < 0) return Status::error(errno, std::string("reading the daemon's answer: ") + std::strerror(errno));
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  nlohmann::json j = nlohmann::json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::error(EPROTO, "the stablefs daemon's answer is not a JSON object");
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) return Status::error(EPROTO, "the stablefs daemon's answer has no status");
  if (!ok->get<bool>()) {
    int code = EIO;
    if (auto e = j.find("errno"); e != j.end() && e->is_number_integer()) code = e->get<int>();
    std::string msg = "the daemon refused the request";
    if (auto m = j.find("error"); m != j.end() && m->is_string()) msg = m->get<std::string>();
    return Status::error(code, msg);
  }
  return j;
}

}  // namespace stablefs
