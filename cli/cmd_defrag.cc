// stablefs defrag [--json] FILE...: moves the fragmented data of files in a mounted stablefs
// into contiguous space now, through the mount's daemon (fs/defragmenter.h), and says per file
// how much moved. The data and the file's times do not change. What the automatic
// defragmenter (mount option autodefrag, the default) does after small writes pause, on
// request: after a burst of random overwrites, before a scan.
#include <sys/stat.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "cli/daemon_client.h"

namespace stablefs::cli {
namespace {

constexpr int kAnswerSeconds = 3600;  // a large file on a slow device

struct DefragArgs {
  std::vector<std::string> paths;
  bool json = false;
};

uint64_t field(const nlohmann::json& reply, const char* key) {
  uint64_t v = 0;
  (void)get_u64(reply, key, v);
  return v;
}

int run_defrag(const DefragArgs& a) {
  int rc = 0;
  nlohmann::json files = nlohmann::json::array();
  for (const std::string& path : a.paths) {
    char resolved[PATH_MAX];
    struct stat st {};
    if (!::realpath(path.c_str(), resolved) || ::stat(resolved, &st) != 0) {
      print_error("defrag", path + ": " + std::strerror(errno));
      rc = 1;
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      print_error("defrag", path + ": not a regular file");
      rc = 1;
      continue;
    }
    Result<nlohmann::json> reply =
        ask_mount_daemon(resolved, {{"op", "defrag"}, {"ino", uint64_t(st.st_ino)}}, kAnswerSeconds);
    if (!reply.ok()) {
      print_error("defrag", path + ": " + reply.status().message());
      rc = 1;
      continue;
    }
    const uint64_t failed = field(*reply, "failed_chunks");
    if (failed > 0) rc = 1;
    if (a.json) {
      nlohmann::json f = *reply;
      f.erase("ok");
      f["path"] = path;
      files.push_back(std::move(f));
    } else {
      std::printf("%s: %llu of %llu chunks moved (%llu KiB, from %llu pieces)%s\n", path.c_str(),
                  (unsigned long long)field(*reply, "moved_chunks"), (unsigned long long)field(*reply, "chunks"),
                  (unsigned long long)(field(*reply, "moved_bytes") >> 10),
                  (unsigned long long)field(*reply, "fragments_before"),
                  failed ? (", " + std::to_string(failed) + " left as they were (see the daemon's log)").c_str() : "");
    }
  }
  if (a.json) std::printf("%s\n", json_text({{"files", files}}, 2).c_str());
  return rc;
}

}  // namespace

RunFn add_defrag_command(CLI::App& root) {
  auto a = std::make_shared<DefragArgs>();
  CLI::App* sub = root.add_subcommand("defrag", "Move a mounted file's fragmented data into contiguous space now");
  sub->add_option("paths", a->paths, "Regular files in a mounted stablefs")->required();
  sub->add_flag("--json", a->json, "Print one JSON document");
  return [a] { return run_defrag(*a); };
}

}  // namespace stablefs::cli
