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

constexpr int kAnswerSeconds = 120;  // one request: at most 64 chunks, on a slow device

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
    // The daemon takes a file a bounded step at a time; the counts add up over the steps.
    const char* const kCounts[] = {"chunks", "moved_chunks", "moved_bytes", "fragments_before", "failed_chunks"};
    nlohmann::json total = {{"path", path}};
    for (const char* k : kCounts) total[k] = uint64_t(0);
    Status failed_request;
    for (uint64_t from = 0;;) {
      Result<nlohmann::json> reply = ask_mount_daemon(
          resolved, {{"op", "defrag"}, {"ino", uint64_t(st.st_ino)}, {"from", from}}, kAnswerSeconds);
      if (!reply.ok()) {
        failed_request = reply.status();
        break;
      }
      for (const char* k : kCounts) total[k] = total[k].get<uint64_t>() + field(*reply, k);
      const uint64_t next = field(*reply, "next");
      if (reply->value("done", true) || next <= from) break;
      from = next;
    }
    if (!failed_request.ok()) {
      print_error("defrag", path + ": " + failed_request.message());
      rc = 1;
      continue;
    }
    const uint64_t failed = total["failed_chunks"].get<uint64_t>();
    if (failed > 0) rc = 1;
    if (a.json) {
      files.push_back(std::move(total));
    } else {
      std::printf("%s: %llu of %llu chunks moved (%llu KiB, from %llu pieces)%s\n", path.c_str(),
                  (unsigned long long)total["moved_chunks"].get<uint64_t>(),
                  (unsigned long long)total["chunks"].get<uint64_t>(),
                  (unsigned long long)(total["moved_bytes"].get<uint64_t>() >> 10),
                  (unsigned long long)total["fragments_before"].get<uint64_t>(),
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
