// The stablefs command: dispatches to subcommands (mkfs, fsck, info, ...).
// Invoked as mkfs.stablefs or fsck.stablefs it behaves as that subcommand.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"stablefs: a FUSE filesystem with checksummed, stable-page-safe direct I/O"};
  app.set_version_flag("--version", "stablefs 0.1.0");
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
