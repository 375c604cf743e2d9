// stablefs map [--json] PATH | stablefs map --image IMAGE [--json] PATH: a file's extents —
// file offset, length, device block, kind (data, unwritten, hole) and whether speculative —
// so a report (a verify error, a block on the device) can be related to the file.
//
// PATH in a mounted stablefs asks its daemon (control socket, root only); with --image the
// unmounted image or device is opened read-only and PATH is the path inside it ("/dir/f").
#include <sys/stat.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "fs/file_map.h"
#include "fs/fuse/control_protocol.h"

namespace stablefs::cli {
namespace {

constexpr int kAnswerSeconds = 60;

struct MapArgs {
  std::string path;
  std::string image;
  bool json = false;
};

Result<FileMap> map_mounted(const std::string& path_arg) {
  char resolved[PATH_MAX];
  if (!::realpath(path_arg.c_str(), resolved)) return Status::error(errno, std::strerror(errno));
  struct stat st {};
  if (::stat(resolved, &st) != 0) return Status::error(errno, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return Status::error(EISDIR, "a directory has no extents");
  if (!S_ISREG(st.st_mode)) return Status::error(EINVAL, "not a regular file");
  SFS_ASSIGN(nlohmann::json reply,
             ask_mount_daemon(resolved, {{"op", "map"}, {"ino", uint64_t(st.st_ino)}}, kAnswerSeconds));
  auto m = reply.find("map");
  if (m == reply.end()) return Status::error(EPROTO, "the daemon's answer has no map");
  return file_map_from_json(*m);
}

Result<FileMap> map_offline(const std::string& image, const std::string& path) {
  if (is_mounted(image)) return Status::error(EBUSY, image + " is mounted: give the path in the mount instead");
  SFS_ASSIGN(std::unique_ptr<Volume> v, Volume::open(image, {.read_only = true}));
  SFS_ASSIGN(const uint64_t ino, lookup_path(v->fs(), path));
  Result<FileMap> m = file_map(*v, ino);
  (void)v->close();
  return m;
}

void print_text(const std::string& path, const FileMap& m) {
  size_t data = 0;
  for (const MapExtent& e : m.extents) data += e.kind != MapKind::kHole;
  std::printf("%s: %llu bytes, %u-byte blocks, %zu extent%s\n", path.c_str(), (unsigned long long)m.size, m.block_size,
              data, data == 1 ? "" : "s");
  if (m.extents.empty()) return;
  std::printf("%5s %16s %16s %14s %12s  %s\n", "EXT", "FILE-OFFSET", "LENGTH", "DEVICE-BLOCK", "BLOCKS", "FLAGS");
  size_t n = 0;
  for (const MapExtent& e : m.extents) {
    const std::string flags = std::string(map_kind_name(e.kind)) + (e.speculative ? ",speculative" : "");
    char dev[32] = "-";
    if (e.kind != MapKind::kHole) std::snprintf(dev, sizeof dev, "%llu", (unsigned long long)e.device_block);
    char ext[16] = "-";
    if (e.kind != MapKind::kHole) std::snprintf(ext, sizeof ext, "%zu", n++);
    std::printf("%5s %16llu %16llu %14s %12llu  %s\n", ext, (unsigned long long)e.offset,
                (unsigned long long)e.length, dev, (unsigned long long)(e.length / m.block_size), flags.c_str());
  }
}

int run_map(const MapArgs& a) {
  Result<FileMap> m = a.image.empty() ? map_mounted(a.path) : map_offline(a.image, a.path);
  if (!m.ok()) {
    print_error("map", (a.image.empty() ? a.path : a.image + ":" + a.path) + ": " + m.status().message());
    return 1;
  }
  if (a.json) {
    nlohmann::json doc = {{"path", a.path}, {"map", file_map_to_json(*m)}};
    if (!a.image.empty()) doc["image"] = a.image;
    std::printf("%s\n", json_text(doc, 2).c_str());
  } else {
    print_text(a.path, *m);
  }
  return 0;
}

}  // namespace

RunFn add_map_command(CLI::App& root) {
  auto a = std::make_shared<MapArgs>();
  CLI::App* sub = root.add_subcommand("map", "Show a file's extents: offsets, device blocks, unwritten and holes");
  sub->add_option("path", a->path, "A file in a mounted stablefs, or with --image the path inside the image")->required();
  sub->add_option("--image", a->image, "Read an unmounted image or device (read-only) instead of a mount");
  sub->add_flag("--json", a->json, "Print one JSON document");
  return [a] { return run_map(*a); };
}

}  // namespace stablefs::cli
