// stablefs verify [--json] TARGET: checks an unmounted device or image — every metadata block
// and every written data block against its checksum (fs/tools/verify.h) — and reports each
// damaged block with the file (all its paths), offset, device block and both checksums, then a
// summary. Exit status: 0 clean, 1 damage found, 8 operational error.
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstring>
#include <set>

#include "cli/commands.h"
#include "cli/mount_paths.h"
#include "fs/fuse/control_protocol.h"
#include "fs/tools/verify.h"

namespace stablefs::cli {
namespace {

struct VerifyArgs {
  std::string target;
  bool json = false;
};

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%016" PRIx64, v);
  return b;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return out;
}

std::string file_names(const VerifyReport& r, uint64_t ino) {
  auto it = r.paths.find(ino);
  return describe_file(ino, it == r.paths.end() ? std::vector<std::string>{} : it->second);
}

double rate(const VerifyReport& r) { return r.seconds > 0 ? r.data_bytes_checked / r.seconds : 0; }

void print_text(const VerifyReport& r) {
  for (const DataBlockError& e : r.data_errors) {
    if (e.unreadable)
      std::printf("%s: unreadable data in %s, offset %" PRIu64 ", %" PRIu64 " bytes, device block %" PRIu64 ": %s\n",
                  r.target.c_str(), file_names(r, e.ino).c_str(), e.file_offset, e.length, e.device_block,
                  e.device_error.c_str());
    else
      std::printf("%s: data checksum mismatch in %s, offset %" PRIu64 ", %" PRIu64 " bytes, device block %" PRIu64
                  ": expected %s, found %s\n",
                  r.target.c_str(), file_names(r, e.ino).c_str(), e.file_offset, e.length, e.device_block,
                  hex(*e.expected).c_str(), hex(*e.found).c_str());
  }
  for (const MetadataError& e : r.metadata_errors) {
    if (e.block)
      std::printf("%s: metadata damage in block %" PRIu64 " (%s): %s\n", r.target.c_str(), *e.block, e.holds.c_str(),
                  e.problem.c_str());
    else
      std::printf("%s: metadata problem: %s\n", r.target.c_str(), e.problem.c_str());
  }
  std::printf("verified %s of data (%" PRIu64 " blocks%s) and %" PRIu64 " metadata blocks in %.1f s (%s/s): %" PRIu64
              " data error%s, %zu metadata error%s, %" PRIu64 " unreadable block%s\n",
              human_bytes(static_cast<double>(r.data_bytes_checked)).c_str(), r.data_blocks_checked,
              r.data_checksums ? "" : ", read only: data checksums are off", r.metadata_blocks_checked, r.seconds,
              human_bytes(rate(r)).c_str(), r.checksum_errors(), r.checksum_errors() == 1 ? "" : "s",
              r.metadata_errors.size(), r.metadata_errors.size() == 1 ? "" : "s", r.unreadable_blocks(),
              r.unreadable_blocks() == 1 ? "" : "s");
  std::set<uint64_t> listed;
  for (const DataBlockError& e : r.data_errors) {
    if (!listed.insert(e.ino).second) continue;
    if (listed.size() == 1) std::printf("files with permanent errors:\n");
    std::printf("    %s\n", file_names(r, e.ino).c_str());  // once per file, with all its names
  }
}

nlohmann::json to_json(const VerifyReport& r) {
  nlohmann::json errors = nlohmann::json::array();
  for (const DataBlockError& e : r.data_errors) {
    nlohmann::json j = {{"kind", e.unreadable ? "unreadable" : "data"},
                        {"ino", e.ino},
                        {"paths", r.paths.count(e.ino) ? r.paths.at(e.ino) : std::vector<std::string>{}},
                        {"file_offset", e.file_offset},
                        {"length", e.length},
                        {"device_block", e.device_block}};
    if (e.unreadable) j["device_error"] = e.device_error;
    else {
      j["expected"] = hex(*e.expected);
      j["found"] = hex(*e.found);
    }
    errors.push_back(std::move(j));
  }
  for (const MetadataError& e : r.metadata_errors) {
    nlohmann::json j = {{"kind", "metadata"}, {"problem", e.problem}};
    if (e.block) {
      j["block"] = *e.block;
      j["holds"] = e.holds;
    }
    errors.push_back(std::move(j));
  }
  nlohmann::json files = nlohmann::json::array();
  std::set<uint64_t> listed;
  for (const DataBlockError& e : r.data_errors)
    if (listed.insert(e.ino).second)
      files.push_back({{"ino", e.ino}, {"paths", r.paths.count(e.ino) ? r.paths.at(e.ino) : std::vector<std::string>{}}});
  return {{"target", r.target},
          {"duration_seconds", r.seconds},
          {"data_bytes_checked", r.data_bytes_checked},
          {"data_blocks_checked", r.data_blocks_checked},
          {"metadata_blocks_checked", r.metadata_blocks_checked},
          {"rate_bytes_per_second", rate(r)},
          {"data_checksums", r.data_checksums},
          {"data_errors", r.checksum_errors()},
          {"metadata_errors", r.metadata_errors.size()},
          {"unreadable_blocks", r.unreadable_blocks()},
          {"errors", std::move(errors)},
          {"files_with_permanent_errors", std::move(files)},
          {"exit_code", r.exit_code()}};
}

// The progress line on a terminal: percent, rate, ETA, redrawn in place.
void draw_progress(const VerifyProgress& p) {
  const double pct = p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0;
  const double bps = p.seconds > 0 ? p.bytes_done / p.seconds : 0;
  const double eta = bps > 0 ? (p.bytes_total - p.bytes_done) / bps : 0;
  std::fprintf(stderr, "\r\033[Kverify: %5.1f%%  %s of %s  %s/s  ETA %.0f s", pct,
               human_bytes(static_cast<double>(p.bytes_done)).c_str(),
               human_bytes(static_cast<double>(p.bytes_total)).c_str(), human_bytes(bps).c_str(), eta);
  std::fflush(stderr);
}

int fail(const VerifyArgs& a, const std::string& message) {
  if (a.json) {
    std::printf("%s\n", json_text({{"target", a.target}, {"error", message}, {"exit_code", kVerifyOperationalError}}, 2)
                            .c_str());
  }
  print_error("verify", a.target + ": " + message);
  return kVerifyOperationalError;
}

int run_verify_command(const VerifyArgs& a) {
  struct stat st {};
  if (::stat(a.target.c_str(), &st) != 0) return fail(a, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) {
    char resolved[PATH_MAX];
    if (::realpath(a.target.c_str(), resolved) && mountpoint_of(resolved) == resolved &&
        control_call(control_socket_path(resolved), {{"op", "stats"}}, 5).ok())
      return fail(a, "a mounted stablefs: verify reads an unmounted device or image (unmount it first)");
    return fail(a, "a directory, not a stablefs device or image");
  }
  if (is_mounted(a.target)) return fail(a, "is mounted: verify reads an unmounted device or image (unmount it first)");
  VerifyOptions opts;
  const bool tty = ::isatty(STDERR_FILENO) && !a.json;
  if (tty) opts.progress = draw_progress;
  VerifyReport r = run_verify(a.target, opts);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!r.fatal.empty()) {
    // The message already names the target.
    if (a.json) std::printf("%s\n", json_text({{"target", a.target}, {"error", r.fatal}, {"exit_code", 8}}, 2).c_str());
    print_error("verify", r.fatal);
    return r.exit_code();
  }
  if (a.json) std::printf("%s\n", json_text(to_json(r), 2).c_str());
  else print_text(r);
  return r.exit_code();
}

}  // namespace

RunFn add_verify_command(CLI::App& root) {
  auto a = std::make_shared<VerifyArgs>();
  CLI::App* sub = root.add_subcommand(
      "verify", "Check every metadata block and every data block's checksum of an unmounted device or image");
  sub->add_option("target", a->target, "The device or image file")->required();
  sub->add_flag("--json", a->json, "Print one JSON document with the summary and every error");
  return [a] { return run_verify_command(*a); };
}

}  // namespace stablefs::cli
