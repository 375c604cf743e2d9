// stablefs scrub start|status|pause|resume|cancel [-B] [--rate MiB/s] [--json] MNT: the online
// scrub of a mounted stablefs, run by its daemon (fs/scrub.h) and asked through the control
// socket (fs/fuse/scrub_protocol.h). start -B (and resume -B) wait in the foreground and report
// as `stablefs verify` does; status reports what the scrub found so far. Paths are found by a
// walk of the mount (cli/mount_paths.h). Exit status: 0 clean (or the action done), 1 damage
// found, 8 operational error (not a stablefs mount, daemon not answering, refused).
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "cli/mount_paths.h"
#include "cli/verify_report.h"
#include "fs/fuse/scrub_protocol.h"

namespace stablefs::cli {
namespace {

constexpr int kAnswerSeconds = 30;
constexpr auto kPollInterval = std::chrono::milliseconds(250);

struct ScrubArgs {
  std::string action;
  std::string target;
  bool foreground = false;
  bool json = false;
  double rate_mib = -1;  // < 0: not given
};

struct Reply {
  ScrubStatus status;
  std::set<uint64_t> damaged;  // files the daemon knows damaged (reads and scrubs)
};

Result<Reply> ask(const std::string& resolved, const ScrubRequest& request) {
  SFS_ASSIGN(nlohmann::json reply, ask_mount_daemon(resolved, scrub_request(request), kAnswerSeconds));
  auto s = reply.find("scrub");
  if (s == reply.end()) return Status::error(EPROTO, "the daemon's answer has no scrub status");
  Reply r;
  SFS_ASSIGN(r.status, scrub_status_from_json(*s));
  r.damaged = damaged_files_from_reply(reply);
  return r;
}

// The report of a scrub status in the shape `stablefs verify` prints, paths found under mnt.
VerifyReport to_report(const std::string& target, const std::string& mnt, const Reply& r, uint32_t block_size) {
  VerifyReport out;
  out.target = target;
  out.seconds = r.status.elapsed_seconds;
  out.data_bytes_checked = r.status.bytes_checked;
  out.data_blocks_checked = block_size ? r.status.bytes_checked / block_size : 0;
  std::set<uint64_t> files = r.damaged;
  for (const ScrubFileFinding& f : r.status.findings) {
    DataBlockError e;
    e.ino = f.ino;
    e.file_offset = f.finding.file_offset;
    e.length = f.finding.length;
    e.device_block = f.finding.device_block;
    e.unreadable = f.finding.unreadable;
    if (e.unreadable) e.device_error = f.finding.device_error;
    else {
      e.expected = f.finding.expected;
      e.found = f.finding.found;
    }
    out.data_errors.push_back(std::move(e));
    files.insert(f.ino);
  }
  for (const std::string& p : r.status.metadata_problems) out.metadata_errors.push_back({std::nullopt, "", p});
  out.paths = paths_of_inodes(mnt, files);
  return out;
}

OnlineReport online_of(const ScrubStatus& s) {
  return {true,          scrub_state_name(s.state), s.transients,     s.bytes_estimate, s.findings_incomplete,
          s.data_errors, s.unreadable,               s.metadata_errors};
}

// Damage counted by the daemon, listed or not.
bool damage_found(const Reply& r) {
  return r.status.data_errors + r.status.unreadable + r.status.metadata_errors > 0 || !r.damaged.empty();
}

int operational_error(const ScrubArgs& a, const std::string& message) {
  if (a.json)
    std::printf("%s\n", json_text({{"target", a.target}, {"error", message}, {"exit_code", kVerifyOperationalError}}, 2)
                            .c_str());
  print_error("scrub", a.target + ": " + message);
  return kVerifyOperationalError;
}

std::string when(uint64_t ns) {
  if (ns == 0) return "-";
  const time_t t = static_cast<time_t>(ns / 1000000000ull);
  tm local{};
  localtime_r(&t, &local);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &local);
  return b;
}

void print_status(const std::string& mnt, const Reply& r, uint32_t block_size) {
  const ScrubStatus& s = r.status;
  if (s.state == ScrubState::kNever) {
    std::printf("scrub of %s: never run\n", mnt.c_str());
  } else {
    const double pct = s.state == ScrubState::kFinished ? 100.0
                       : s.bytes_estimate          ? std::min(99.9, 100.0 * s.bytes_checked / s.bytes_estimate)
                                                   : 0.0;
    const double rate = s.rate();
    std::printf("scrub of %s: %s, %.1f%% (%s of about %s)\n", mnt.c_str(), scrub_state_name(s.state), pct,
                human_bytes(static_cast<double>(s.bytes_checked)).c_str(),
                human_bytes(static_cast<double>(s.bytes_estimate)).c_str());
    std::printf("started %s, %s; %.1f s scrubbing at %s/s (limit %s)", when(s.started_ns).c_str(),
                s.ended_ns ? ("ended " + when(s.ended_ns)).c_str() : "not ended", s.elapsed_seconds,
                human_bytes(rate).c_str(), s.rate_limit ? (human_bytes(static_cast<double>(s.rate_limit)) + "/s").c_str() : "none");
    if (s.state == ScrubState::kRunning && rate > 0 && s.bytes_estimate > s.bytes_checked)
      std::printf(", ETA %.0f s", (s.bytes_estimate - s.bytes_checked) / rate);
    std::printf("\n");
    std::printf("errors so far: %llu data, %llu unreadable, %llu metadata; %llu transient mismatches\n",
                (unsigned long long)s.data_errors, (unsigned long long)s.unreadable,
                (unsigned long long)s.metadata_errors, (unsigned long long)s.transients);
    if (s.state == ScrubState::kPaused || s.state == ScrubState::kInterrupted)
      std::printf("next: inode %llu offset %llu (`stablefs scrub resume %s` continues)\n",
                  (unsigned long long)s.next_ino, (unsigned long long)s.next_offset, mnt.c_str());
  }
  // The damaged blocks and files, as verify lists them (without its summary line).
  const VerifyReport lines = to_report(mnt, mnt, r, block_size);
  print_damage(lines);
  print_damaged_files(lines);
}

}  // namespace

int run_scrub(const std::string& action, const std::string& target, std::optional<uint64_t> rate, bool foreground,
              bool json) {
  const ScrubArgs a{action, target, foreground, json, -1};
  char resolved_buf[PATH_MAX];
  if (!::realpath(target.c_str(), resolved_buf)) return operational_error(a, std::strerror(errno));
  const std::string resolved = resolved_buf;
  const std::string mnt = mountpoint_of(resolved);
  Result<Reply> r = ask(resolved, {action, rate});
  if (!r.ok()) return operational_error(a, r.status().message());
  struct stat st {};
  const uint32_t block_size = ::stat(mnt.c_str(), &st) == 0 ? static_cast<uint32_t>(st.st_blksize) : 0;
  if (action == "status") {
    if (json) {
      VerifyReport rep = to_report(mnt, mnt, *r, block_size);
      nlohmann::json j = report_json(rep, online_of(r->status));
      j["exit_code"] = damage_found(*r) ? kVerifyDamage : kVerifyClean;
      std::printf("%s\n", json_text(j, 2).c_str());
    } else {
      print_status(mnt, *r, block_size);
    }
    return damage_found(*r) ? kVerifyDamage : kVerifyClean;
  }
  if (!foreground || (action != "start" && action != "resume")) {
    if (json) std::printf("%s\n", json_text({{"target", mnt}, {"state", scrub_state_name(r->status.state)}, {"exit_code", 0}}, 2).c_str());
    else std::printf("scrub of %s: %s\n", mnt.c_str(), scrub_state_name(r->status.state));
    return kVerifyClean;
  }
  // In the foreground: wait while it runs, drawing progress on a terminal.
  const bool tty = ::isatty(STDERR_FILENO) && !json;
  while (r->status.state == ScrubState::kRunning) {
    if (tty) draw_progress("scrub", r->status.bytes_checked, r->status.bytes_estimate, r->status.elapsed_seconds);
    std::this_thread::sleep_for(kPollInterval);
    r = ask(resolved, {"status", std::nullopt});
    if (!r.ok()) {
      if (tty) clear_progress();
      return operational_error(a, r.status().message() +
                                      " (the daemon stopped answering: its scrub position is saved; `stablefs scrub "
                                      "resume` after the next mount continues)");
    }
  }
  if (tty) clear_progress();
  VerifyReport rep = to_report(mnt, mnt, *r, block_size);
  int code = damage_found(*r) ? kVerifyDamage : kVerifyClean;
  if (code == kVerifyClean && r->status.state != ScrubState::kFinished) code = kVerifyOperationalError;
  if (json) {
    nlohmann::json j = report_json(rep, online_of(r->status));
    j["exit_code"] = code;
    std::printf("%s\n", json_text(j, 2).c_str());
  } else {
    print_report(rep, online_of(r->status));
  }
  if (code == kVerifyOperationalError)
    print_error("scrub", mnt + ": the scrub was " + scrub_state_name(r->status.state) + " before it finished");
  return code;
}

RunFn add_scrub_command(CLI::App& root) {
  auto a = std::make_shared<ScrubArgs>();
  CLI::App* sub = root.add_subcommand(
      "scrub", "Check every data block of a mounted stablefs against its checksum, beside its users");
  sub->add_option("action", a->action, "start, status, pause, resume or cancel")
      ->required()
      ->check(CLI::IsMember({"start", "status", "pause", "resume", "cancel"}));
  sub->add_option("mountpoint", a->target, "The mountpoint (or any path inside the mount)")->required();
  sub->add_flag("-B,--foreground", a->foreground, "start, resume: wait until the scrub ends and report (as verify does)");
  sub->add_option("--rate", a->rate_mib, "start, resume: read at most this many MiB a second (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--json", a->json, "Print one JSON document");
  return [a] {
    std::optional<uint64_t> rate;
    if (a->rate_mib >= 0) rate = static_cast<uint64_t>(std::llround(a->rate_mib * 1048576.0));
    if (a->action != "start" && a->action != "resume") rate.reset();
    else if (a->action == "start" && !rate) rate = 0;
    return run_scrub(a->action, a->target, rate, a->foreground, a->json);
  };
}

}  // namespace stablefs::cli
