// mkfs: choosing a geometry, recognising what a device already holds, and formatting it.
#pragma once

#include <cstdint>
#include <string>

#include "bounce/block_device.h"
#include "fs/format/format.h"

namespace stablefs {

struct MkfsOptions {
  uint32_t block_size = kDefaultBlockSize;
  std::string label;
  bool data_checksums = true;
  uint64_t journal_blocks = 0;  // 0: chosen from the device size
};

// The geometry mkfs would write on a device of device_bytes. Errors say what is wrong
// (block size not a power of two in range, device too small, label too long).
Result<Superblock> plan_filesystem(uint64_t device_bytes, const MkfsOptions& opts);

// Names a filesystem already on the device ("stablefs", "ext4", "xfs", "btrfs") or returns
// an empty string when none is recognised.
Result<std::string> detect_existing_filesystem(BlockDevice& dev);

// Formats the device and leaves it clean. Returns the written superblock.
Result<Superblock> make_filesystem(BlockDevice& dev, const MkfsOptions& opts);

}  // namespace stablefs
