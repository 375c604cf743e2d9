// stablefs fsck TARGET: checks (and unless -n, repairs) a filesystem. Exit codes as fsck(8).
#include <cstdio>

#include "bounce/file_device.h"
#include "cli/commands.h"
#include "fs/tools/fsck.h"

namespace stablefs::cli {
namespace {

struct FsckArgs {
  std::string target;
  bool no_change = false;
  bool yes = false;
  bool force = false;
  bool verbose = false;
  int progress_fd = -1;
};

int run_fsck_command(const FsckArgs& a) {
  const bool repair = !a.no_change;
  if (repair && is_mounted(a.target)) {
    print_error("fsck", a.target + ": is mounted; unmount it first or check it with -n");
    return kFsckOperationalError;
  }
  auto dev = FileDevice::open(a.target, {.read_only = !repair, .exclusive = repair});
  if (!dev.ok()) {
    print_error("fsck", dev.status().message());
    return kFsckOperationalError;
  }
  FsckOptions opts;
  opts.repair = repair;
  // Each problem on one line, prefixed with the target unless the message names it already.
  auto print_line = [&](const char* tag, const std::string& line) {
    if (line.rfind(a.target + ":", 0) == 0) std::printf("%s%s\n", tag, line.c_str());
    else std::printf("%s: %s%s\n", a.target.c_str(), tag, line.c_str());
  };
  opts.on_problem = [&](const std::string& line) { print_line("", line); };
  FsckReport r = run_fsck(**dev, opts);
  if (!r.fatal.empty()) {
    print_error("fsck", r.fatal);
    return kFsckOperationalError;
  }
  for (const std::string& fixed : r.corrected) print_line("fixed: ", fixed);
  if (a.verbose || !r.problems.empty() || r.replayed_transactions) {
    if (r.replayed_transactions)
      std::printf("%s: journal: %llu committed transaction%s %s\n", a.target.c_str(), (unsigned long long)r.replayed_transactions,
                  r.replayed_transactions == 1 ? "" : "s", repair ? "replayed" : "would be replayed at mount");
  }
  if (r.orphans) {
    const unsigned long long n = repair ? r.orphans_freed : r.orphans;
    std::printf("%s: %llu orphaned inode%s (unlinked while open) %s\n", a.target.c_str(), n, n == 1 ? "" : "s",
                repair ? "freed" : "to be freed at the next mount");
  }
  if (r.truncates_pending || r.truncates_finished) {
    const unsigned long long n = repair ? r.truncates_finished : r.truncates_pending;
    std::printf("%s: %llu interrupted truncate%s %s\n", a.target.c_str(), n, n == 1 ? "" : "s",
                repair ? "finished" : "to be finished at the next mount");
  }
  if (r.total_blocks)
    std::printf("%s: %llu inodes (%llu directories, %llu files, %llu symlinks, %llu special), %llu/%llu blocks used\n",
              a.target.c_str(), (unsigned long long)r.inodes, (unsigned long long)r.directories,
              (unsigned long long)r.regular_files, (unsigned long long)r.symlinks, (unsigned long long)r.specials,
              (unsigned long long)(r.total_blocks - r.free_blocks), (unsigned long long)r.total_blocks);
  switch (r.exit_code()) {
    case kFsckClean: std::printf("%s: clean\n", a.target.c_str()); break;
    case kFsckCorrected: std::printf("%s: %zu problems, all corrected\n", a.target.c_str(), r.problems.size()); break;
    default:
      std::printf("%s: %zu problems, %zu corrected, %zu left%s\n", a.target.c_str(), r.problems.size(), r.corrected.size(),
                  r.problems.size() - r.corrected.size(), repair ? "" : " (checked with -n: nothing was changed)");
  }
  return r.exit_code();
}

}  // namespace

RunFn add_fsck_command(CLI::App& root) {
  auto args = std::make_shared<FsckArgs>();
  CLI::App* sub = root.add_subcommand("fsck", "Check and repair a stablefs filesystem (exit codes as fsck(8))");
  sub->add_option("target", args->target, "Image file or block device")->required();
  sub->add_flag("-n,--no-change", args->no_change, "Check only; never write to the device");
  sub->add_flag("-y,-a,-p,--yes", args->yes, "Repair without asking (the default; accepted for fsck(8))");
  sub->add_flag("-f,--force", args->force, "Check even if clean (always done; accepted for fsck(8))");
  sub->add_flag("-v,--verbose", args->verbose, "Report journal replay and summary");
  sub->add_option("-C", args->progress_fd, "Progress file descriptor from fsck(8) (accepted; the check prints no progress)");
  return [args] { return run_fsck_command(*args); };
}

}  // namespace stablefs::cli
