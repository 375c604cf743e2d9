// Subcommands of the stablefs command. Each add_* registers its options on the root app
// and returns the function that runs it once parsing chose it; that function returns the
// process exit status and prints its own one-line errors to stderr.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stablefs::cli {

using RunFn = std::function<int()>;

RunFn add_mkfs_command(CLI::App& root);
RunFn add_info_command(CLI::App& root);
RunFn add_fsck_command(CLI::App& root);
RunFn add_mount_command(CLI::App& root);
RunFn add_umount_command(CLI::App& root);
RunFn add_stats_command(CLI::App& root);
RunFn add_map_command(CLI::App& root);
RunFn add_verify_command(CLI::App& root);
RunFn add_sync_command(CLI::App& root);
RunFn add_scrub_command(CLI::App& root);
RunFn add_defrag_command(CLI::App& root);

// The online scrub of the mount holding target (cli/cmd_scrub.cc): action start, status, pause,
// resume or cancel; rate in bytes a second (start: 0 is none; resume: empty keeps it);
// foreground (start, resume) waits and reports. Returns the exit status (0, 1 or 8).
int run_scrub(const std::string& action, const std::string& target, std::optional<uint64_t> rate, bool foreground,
              bool json);

// argv of mount.stablefs (mount(8)'s helper convention) as "stablefs mount ..." argv, and
// argv of umount.stablefs as "stablefs umount ..." argv. An empty result (mount -f, a dry
// run) means: exit 0 at once.
std::vector<std::string> mount_helper_args(const std::vector<std::string>& argv);
std::vector<std::string> umount_helper_args(const std::vector<std::string>& argv);

// Parses a size such as 4096, 64K, 512M, 1G, 2T (binary units). Throws CLI::ValidationError.
uint64_t parse_size(const std::string& text);
// Prints "stablefs <cmd>: <message>" to stderr.
void print_error(const std::string& command, const std::string& message);
// Whether path (or the device it names) is the source of a mounted filesystem.
bool is_mounted(const std::string& path);
// The runtime file a mount daemon keeps for MOUNTPOINT (a resolved path): "PID\nDEVICE\n",
// under /run/stablefs (root) or $XDG_RUNTIME_DIR/stablefs-UID; creates the directory.
std::string runtime_file(const std::string& mountpoint);
// The unix socket on which a mount daemon answers control requests (fs/fuse/control_protocol.h).
std::string control_socket_path(const std::string& mountpoint);
// The mountpoint of the filesystem holding `resolved` (an absolute path without symlinks): the
// topmost directory above it on the same device. Empty when it cannot be told (stat fails).
std::string mountpoint_of(const std::string& resolved);

}  // namespace stablefs::cli
