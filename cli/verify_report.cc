#include "cli/verify_report.h"

#include <cinttypes>
#include <cstdio>
#include <set>

#include "cli/mount_paths.h"

namespace stablefs::cli {
namespace {

std::string file_names(const VerifyReport& r, uint64_t ino) {
  auto it = r.paths.find(ino);
  return describe_file(ino, it == r.paths.end() ? std::vector<std::string>{} : it->second);
}

double rate(const VerifyReport& r) { return r.seconds > 0 ? r.data_bytes_checked / r.seconds : 0; }

const char* plural(uint64_t n) { return n == 1 ? "" : "s"; }

}  // namespace

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

void print_damage(const VerifyReport& r) {
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
}

void print_damaged_files(const VerifyReport& r) {
  bool header = false;
  for (const auto& [ino, names] : r.paths) {
    if (!header) std::printf("files with permanent errors:\n");
    header = true;
    std::printf("    %s\n", describe_file(ino, names).c_str());  // once per file, with all its names
  }
}

void print_report(const VerifyReport& r, const OnlineReport& online) {
  print_damage(r);
  const uint64_t data_errors = online.online ? online.data_errors : r.checksum_errors();
  const uint64_t unreadable = online.online ? online.unreadable : r.unreadable_blocks();
  if (online.online) {
    std::printf("scrub %s: %s of data (%" PRIu64 " blocks%s) in %.1f s (%s/s): %" PRIu64 " data error%s, %zu metadata error%s, %" PRIu64
                " unreadable block%s, %" PRIu64 " transient mismatch%s (matched when read again)\n",
                online.state.c_str(), human_bytes(static_cast<double>(r.data_bytes_checked)).c_str(),
                r.data_blocks_checked, r.data_checksums ? "" : ", read only: data checksums are off", r.seconds,
                human_bytes(rate(r)).c_str(), data_errors, plural(data_errors), online.metadata_errors,
                plural(online.metadata_errors), unreadable, plural(unreadable), online.transients,
                online.transients == 1 ? "" : "es");
    if (online.findings_incomplete)
      std::printf("(errors found before the scrub was resumed after an unmount are counted, not listed)\n");
  } else {
    std::printf("verified %s of data (%" PRIu64 " blocks%s) and %" PRIu64 " metadata blocks in %.1f s (%s/s): %" PRIu64
                " data error%s, %zu metadata error%s, %" PRIu64 " unreadable block%s\n",
                human_bytes(static_cast<double>(r.data_bytes_checked)).c_str(), r.data_blocks_checked,
                r.data_checksums ? "" : ", read only: data checksums are off", r.metadata_blocks_checked, r.seconds,
                human_bytes(rate(r)).c_str(), data_errors, plural(data_errors), r.metadata_errors.size(),
                plural(r.metadata_errors.size()), unreadable, plural(unreadable));
  }
  print_damaged_files(r);
}

nlohmann::json report_json(const VerifyReport& r, const OnlineReport& online) {
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
  for (const auto& [ino, names] : r.paths) files.push_back({{"ino", ino}, {"paths", names}});
  nlohmann::json j = {{"target", r.target},
                      {"duration_seconds", r.seconds},
                      {"data_bytes_checked", r.data_bytes_checked},
                      {"data_blocks_checked", r.data_blocks_checked},
                      {"rate_bytes_per_second", rate(r)},
                      {"data_checksums", r.data_checksums},
                      {"data_errors", r.checksum_errors()},
                      {"metadata_errors", r.metadata_errors.size()},
                      {"unreadable_blocks", r.unreadable_blocks()},
                      {"errors", std::move(errors)},
                      {"files_with_permanent_errors", std::move(files)},
                      {"exit_code", r.exit_code()}};
  if (online.online) {
    j["data_errors"] = online.data_errors;
    j["unreadable_blocks"] = online.unreadable;
    j["metadata_errors"] = online.metadata_errors;
    j["state"] = online.state;
    j["transients"] = online.transients;
    j["bytes_estimate"] = online.bytes_estimate;
    j["errors_complete"] = !online.findings_incomplete;
  } else {
    j["metadata_blocks_checked"] = r.metadata_blocks_checked;
  }
  return j;
}

void draw_progress(const char* what, uint64_t done, uint64_t total, double seconds) {
  const double pct = total ? std::min(100.0, 100.0 * done / total) : 100.0;
  const double bps = seconds > 0 ? done / seconds : 0;
  const double eta = bps > 0 && total > done ? (total - done) / bps : 0;
  std::fprintf(stderr, "\r\033[K%s: %5.1f%%  %s of %s  %s/s  ETA %.0f s", what, pct,
               human_bytes(static_cast<double>(done)).c_str(), human_bytes(static_cast<double>(total)).c_str(),
               human_bytes(bps).c_str(), eta);
  std::fflush(stderr);
}

void clear_progress() {
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

}  // namespace stablefs::cli
