// stablefs verify [--json] TARGET: checks an unmounted device or image — every metadata block
// and every written data block against its checksum (fs/tools/verify.h) — and reports each
// damaged block with the file (all its paths), offset, device block and both checksums, then a
// summary. On a stablefs mountpoint it runs the online scrub in the foreground (scrub start -B).
// Exit status: 0 clean, 1 damage found, 8 operational error.
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstring>
#include <set>

#include "cli/commands.h"
#include "cli/verify_report.h"
#include "fs/fuse/control_protocol.h"
#include "fs/tools/verify.h"

namespace stablefs::cli {
namespace {

struct VerifyArgs {
  std::string target;
  bool json = false;
};

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
    // A mountpoint: the same as `stablefs scrub start -B MNT`, run by its daemon.
    char resolved[PATH_MAX];
    if (::realpath(a.target.c_str(), resolved) && mountpoint_of(resolved) == resolved &&
        control_call(control_socket_path(resolved), {{"op", "stats"}}, 5).ok())
      return run_scrub("start", a.target, 0, true, a.json);
    return fail(a, "a directory, not a stablefs mountpoint, device or image");
  }
  if (is_mounted(a.target))
    return fail(a, "is mounted: verify reads an unmounted device or image; for a mounted one, `stablefs scrub start -B "
                   "MOUNTPOINT` (or `stablefs verify MOUNTPOINT`)");
  VerifyOptions opts;
  const bool tty = ::isatty(STDERR_FILENO) && !a.json;
  if (tty) opts.progress = [](const VerifyProgress& p) { draw_progress("verify", p.bytes_done, p.bytes_total, p.seconds); };
  VerifyReport r = run_verify(a.target, opts);
  if (tty) clear_progress();
  if (!r.fatal.empty()) {
    // The message already names the target.
    if (a.json) std::printf("%s\n", json_text({{"target", a.target}, {"error", r.fatal}, {"exit_code", 8}}, 2).c_str());
    print_error("verify", r.fatal);
    return r.exit_code();
  }
  if (a.json) std::printf("%s\n", json_text(report_json(r), 2).c_str());
  else print_report(r);
  return r.exit_code();
}

}  // namespace

RunFn add_verify_command(CLI::App& root) {
  auto a = std::make_shared<VerifyArgs>();
  CLI::App* sub = root.add_subcommand(
      "verify", "Check every metadata block and every data block's checksum of an unmounted device or image, "
                "or scrub a mounted stablefs (scrub start -B)");
  sub->add_option("target", a->target, "The device or image file, or a stablefs mountpoint")->required();
  sub->add_flag("--json", a->json, "Print one JSON document with the summary and every error");
  return [a] { return run_verify_command(*a); };
}

}  // namespace stablefs::cli
