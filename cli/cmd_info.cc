// stablefs info TARGET: geometry, features, usage, journal and clean state.
#include <cstdio>
#include <ctime>

#include "bounce/file_device.h"
#include "cli/commands.h"
#include "fs/meta/journal.h"
#include "fs/meta/metadata_store.h"
#include "fs/format/superblock_io.h"

namespace stablefs::cli {
namespace {

struct InfoArgs {
  std::string target;
};

std::string format_time(uint64_t ns) {
  if (ns == 0) return "never";
  time_t t = static_cast<time_t>(ns / 1000000000ull);
  char buf[64];
  struct tm tm {};
  gmtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string features(const Superblock& sb) {
  std::string out;
  if (sb.data_checksums()) out += "data_checksums ";
  if (sb.ro_compat & kRoCompatOrphans) out += "orphans_present ";
  if (sb.ro_compat & kRoCompatTruncates) out += "truncates_pending ";
  if (sb.incompat & kIncompatSpeculative) out += "speculative_present ";
  if (sb.incompat & kIncompatLongTransactions) out += "long_transactions ";
  if (sb.ro_compat & ~kKnownRoCompat) out += "unknown_ro_compat ";
  if (sb.compat & ~kKnownCompat) out += "unknown_compat ";
  if (out.empty()) return "(none)";
  out.pop_back();
  return out;
}

int run_info(const InfoArgs& a) {
  auto dev = FileDevice::open(a.target, {.read_only = true, .exclusive = false});
  if (!dev.ok()) {
    print_error("info", dev.status().message());
    return 1;
  }
  auto sb = read_superblock(**dev, SuperblockCopy::kPrimary);
  if (!sb.ok()) {
    print_error("info", sb.status().message());
    return 1;
  }
  auto log = Journal::read_log(**dev, *sb);
  if (!log.ok()) {
    print_error("info", a.target + ": " + log.status().message());
    return 1;
  }
  // The committed state, journal included, as a mount would see it.
  auto store = MetadataStore::open(**dev, {.read_only = true, .tolerate_inconsistent_counters = true});
  if (!store.ok()) {
    print_error("info", store.status().message());
    return 1;
  }
  const Superblock& s = (*store)->superblock();
  const uint64_t bs = s.block_size;
  auto mib = [&](uint64_t blocks) { return double(blocks) * double(bs) / (1024.0 * 1024.0); };
  uint64_t data_blocks = s.total_blocks - s.data_start - 1;
  uint64_t used = data_blocks - s.free_blocks;
  std::printf("device           %s\n", a.target.c_str());
  std::printf("uuid             %s\n", uuid_to_string(s.uuid).c_str());
  std::printf("label            %s\n", s.label.empty() ? "(none)" : s.label.c_str());
  std::printf("format version   %u\n", s.version);
  std::printf("features         %s\n", features(s).c_str());
  std::printf("block size       %u\n", s.block_size);
  std::printf("total blocks     %llu (%.1f MiB)\n", (unsigned long long)s.total_blocks, mib(s.total_blocks));
  std::printf("journal          %llu blocks at %llu (%.1f MiB)\n", (unsigned long long)s.journal_blocks,
              (unsigned long long)s.journal_start, mib(s.journal_blocks));
  std::printf("journal state    %s (%llu committed transaction%s to replay, next sequence %llu)\n",
              log->transactions ? "needs replay" : "empty", (unsigned long long)log->transactions,
              log->transactions == 1 ? "" : "s", (unsigned long long)log->next_seq);
  std::printf("bitmaps          %llu blocks at %llu\n", (unsigned long long)s.bitmap_blocks, (unsigned long long)s.bitmap_start);
  std::printf("data area        %llu blocks from %llu\n", (unsigned long long)data_blocks, (unsigned long long)s.data_start);
  // As the superblock has them: a journal still to replay may hold newer roots.
  std::printf("fs tree root     block %llu\n", (unsigned long long)s.fs_tree_root);
  std::printf("csum tree root   block %llu\n", (unsigned long long)s.csum_tree_root);
  std::printf("used             %llu blocks (%.1f MiB)\n", (unsigned long long)used, mib(used));
  std::printf("free             %llu blocks (%.1f MiB)\n", (unsigned long long)s.free_blocks, mib(s.free_blocks));
  std::printf("inodes           %llu\n", (unsigned long long)s.inode_count);
  std::printf("state            %s\n", s.state == kStateClean ? "clean" : "dirty (not cleanly unmounted)");
  std::printf("mount count      %u\n", s.mount_count);
  std::printf("created          %s\n", format_time(s.mkfs_time_ns).c_str());
  std::printf("last mounted     %s\n", format_time(s.mount_time_ns).c_str());
  std::printf("last written     %s\n", format_time(s.write_time_ns).c_str());
  return 0;
}

}  // namespace

RunFn add_info_command(CLI::App& root) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* sub = root.add_subcommand("info", "Show a stablefs filesystem's geometry, features, usage and state");
  sub->add_option("target", args->target, "Image file or block device")->required();
  return [args] { return run_info(*args); };
}

}  // namespace stablefs::cli
