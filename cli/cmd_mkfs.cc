// stablefs mkfs TARGET: formats an image file (created at --size), a loop device or any
// block device.
#include <sys/stat.h>

#include <cstdio>

#include "bounce/file_device.h"
#include "cli/commands.h"
#include "fs/tools/mkfs.h"

namespace stablefs::cli {
namespace {

struct MkfsArgs {
  std::string target;
  std::string size;
  uint32_t block_size = kDefaultBlockSize;
  std::string label;
  bool no_data_csum = false;
  bool force = false;
  uint64_t journal_blocks = 0;
  bool quiet = false;
};

void print_geometry(const std::string& target, const Superblock& sb) {
  auto mib = [&](uint64_t blocks) { return double(blocks) * sb.block_size / (1024.0 * 1024.0); };
  std::printf("stablefs filesystem on %s\n", target.c_str());
  std::printf("  uuid           %s\n", uuid_to_string(sb.uuid).c_str());
  if (!sb.label.empty()) std::printf("  label          %s\n", sb.label.c_str());
  std::printf("  block size     %u\n", sb.block_size);
  std::printf("  blocks         %llu (%.1f MiB)\n", (unsigned long long)sb.total_blocks, mib(sb.total_blocks));
  std::printf("  journal        blocks %llu..%llu (%.1f MiB)\n", (unsigned long long)sb.journal_start,
              (unsigned long long)(sb.journal_start + sb.journal_blocks - 1), mib(sb.journal_blocks));
  std::printf("  bitmaps        blocks %llu..%llu\n", (unsigned long long)sb.bitmap_start,
              (unsigned long long)(sb.bitmap_start + sb.bitmap_blocks - 1));
  std::printf("  data           blocks %llu..%llu, %llu free (%.1f MiB)\n", (unsigned long long)sb.data_start,
              (unsigned long long)(sb.total_blocks - 2), (unsigned long long)sb.free_blocks, mib(sb.free_blocks));
  std::printf("  data checksums %s\n", sb.data_checksums() ? "xxh3-64 per block" : "off");
}

int run_mkfs(const MkfsArgs& a) {
  const char* cmd = "mkfs";
  struct stat st {};
  bool exists = ::stat(a.target.c_str(), &st) == 0;
  if (exists && S_ISBLK(st.st_mode) && !a.size.empty()) {
    print_error(cmd, a.target + ": --size applies only to image files");
    return 1;
  }
  if (!exists && a.size.empty()) {
    print_error(cmd, a.target + ": does not exist (give --size to create an image file)");
    return 1;
  }
  if (exists && !S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
    print_error(cmd, a.target + ": not a block device or regular file");
    return 1;
  }
  if (exists && is_mounted(a.target)) {
    print_error(cmd, a.target + ": is mounted; unmount it first");
    return 1;
  }
  uint64_t size = 0;
  if (!a.size.empty()) {
    try {
      size = parse_size(a.size);
    } catch (const CLI::Error& e) {
      print_error(cmd, e.what());
      return 1;
    }
  }
  // Look before writing anything: an existing filesystem is kept unless --force.
  if (exists) {
    auto dev = FileDevice::open(a.target, {.read_only = true, .exclusive = true});
    if (!dev.ok()) {
      print_error(cmd, dev.status().message());
      return 1;
    }
    auto found = detect_existing_filesystem(**dev);
    if (!found.ok()) {
      print_error(cmd, found.status().message());
      return 1;
    }
    if (!found->empty() && !a.force) {
      print_error(cmd, a.target + ": contains a " + *found + " filesystem; use --force to overwrite it");
      return 1;
    }
  }
  if (!a.size.empty()) {
    Status st = FileDevice::create_image(a.target, size);
    if (!st.ok()) {
      print_error(cmd, st.message());
      return 1;
    }
  }
  auto dev = FileDevice::open(a.target, {.read_only = false, .exclusive = true});
  if (!dev.ok()) {
    print_error(cmd, dev.status().message());
    return 1;
  }
  MkfsOptions opts{a.block_size, a.label, !a.no_data_csum, a.journal_blocks};
  auto sb = make_filesystem(**dev, opts);
  if (!sb.ok()) {
    print_error(cmd, a.target + ": " + sb.status().message());
    return 1;
  }
  if (!a.quiet) print_geometry(a.target, *sb);
  return 0;
}

}  // namespace

RunFn add_mkfs_command(CLI::App& root) {
  auto args = std::make_shared<MkfsArgs>();
  CLI::App* sub = root.add_subcommand("mkfs", "Create a stablefs filesystem on an image file or block device");
  sub->add_option("target", args->target, "Image file or block device")->required();
  sub->add_option("-s,--size", args->size, "Create or resize an image file to SIZE (e.g. 1G, 512M)");
  sub->add_option("-b,--block-size", args->block_size, "Filesystem block size: 4096..65536, a power of two");
  sub->add_option("-L,--label", args->label, "Filesystem label (up to 63 bytes)");
  sub->add_flag("--no-data-csum", args->no_data_csum, "Do not checksum file data");
  sub->add_flag("-f,--force", args->force, "Overwrite an existing filesystem");
  sub->add_option("--journal-blocks", args->journal_blocks, "Journal size in blocks (default: from device size)");
  sub->add_flag("-q,--quiet", args->quiet, "Print nothing on success");
  return [args] { return run_mkfs(*args); };
}

}  // namespace stablefs::cli
