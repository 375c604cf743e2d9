// The stablefs command: dispatches to subcommands (mkfs, fsck, info, mount, umount, stats, map,
// verify, sync, scrub, defrag).
// Invoked as mkfs.stablefs or fsck.stablefs it behaves as that subcommand; as mount.stablefs
// or mount.fuse.stablefs (mount(8)'s helpers for the types stablefs and fuse.stablefs) or umount.stablefs / umount.fuse.stablefs (umount(8)'s helpers) it takes
// their argument conventions and runs mount / umount. "stablefs SOURCE MNT -o OPTS" (how
// mount.fuse3 runs the fuse.stablefs type) is "stablefs mount SOURCE MNT -o OPTS".
#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  // mkfs.stablefs ARGS == stablefs mkfs ARGS (likewise fsck.stablefs).
  std::vector<std::string> args(argv, argv + argc);
  std::string self = args[0].substr(args[0].find_last_of('/') + 1);
  for (const char* alias : {"mkfs", "fsck"}) {
    if (self == std::string(alias) + ".stablefs") args.insert(args.begin() + 1, alias);
  }
  if (self == "mount.stablefs" || self == "mount.fuse.stablefs") args = stablefs::cli::mount_helper_args(args);
  if (self == "umount.stablefs" || self == "umount.fuse.stablefs") args = stablefs::cli::umount_helper_args(args);
  if (args.empty()) return 0;
  // mount.fuse3 runs a "fuse.stablefs" mount as "stablefs SOURCE MOUNTPOINT -o OPTIONS".
  static const char* const kSubcommands[] = {"mkfs", "info", "fsck", "mount", "umount", "stats", "map", "verify", "sync", "scrub", "defrag"};
  // Only a source that is a path is taken for one: a mistyped subcommand is an error, never a
  // mount attempt.
  if (args.size() >= 2 && !args[1].empty() && args[1][0] != '-' &&
      std::none_of(std::begin(kSubcommands), std::end(kSubcommands), [&](const char* c) { return args[1] == c; })) {
    struct stat st {};
    if (args.size() >= 3 && (args[1].find('/') != std::string::npos || ::stat(args[1].c_str(), &st) == 0)) {
      args.insert(args.begin() + 1, {"mount", "--complete-options"});
    } else {
      std::string names;
      for (const char* c : kSubcommands) names += std::string(names.empty() ? "" : ", ") + c;
      std::fprintf(stderr, "stablefs: unknown command '%s' (commands: %s; see --help)\n", args[1].c_str(), names.c_str());
      return 1;
    }
  }
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());

  CLI::App app{"stablefs: a FUSE filesystem with checksummed, stable-page-safe direct I/O"};
  app.set_version_flag("--version", "stablefs 0.1.0");
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, stablefs::cli::RunFn>> commands;
  auto add = [&](stablefs::cli::RunFn run) { commands.emplace_back(app.get_subcommands({}).back(), std::move(run)); };
  add(stablefs::cli::add_mkfs_command(app));
  add(stablefs::cli::add_info_command(app));
  add(stablefs::cli::add_fsck_command(app));
  add(stablefs::cli::add_mount_command(app));
  add(stablefs::cli::add_umount_command(app));
  add(stablefs::cli::add_stats_command(app));
  add(stablefs::cli::add_map_command(app));
  add(stablefs::cli::add_verify_command(app));
  add(stablefs::cli::add_sync_command(app));
  add(stablefs::cli::add_scrub_command(app));
  add(stablefs::cli::add_defrag_command(app));
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "stablefs: %s (see --help)\n", e.what());
    // fsck(8) reserves 16 for usage errors; verify and scrub say 8 for anything operational.
    if (app.got_subcommand("fsck") || self == "fsck.stablefs") return 16;
    return app.got_subcommand("verify") || app.got_subcommand("scrub") ? 8 : 1;
  }
  for (auto& [sub, run] : commands)
    if (sub->parsed()) return run();
  return 1;
}
