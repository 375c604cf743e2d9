// Reading and writing the two superblock copies on a device.
//
// read_superblock() tries the primary (block 0) and reports exactly what is wrong with it;
// the backup (last block) is read only when asked. Pure device I/O: no cache, no journal.
#pragma once

#include <cstdint>

#include "bounce/block_device.h"
#include "fs/format/format.h"

namespace stablefs {

enum class SuperblockCopy { kPrimary, kBackup };

// Reads and fully validates one copy. Errors are one line naming the device and the fault.
// The backup is searched for in the device's last block at every legal block size, unless
// primary (a valid primary superblock) says where it must be.
Result<Superblock> read_superblock(BlockDevice& dev, SuperblockCopy which, const Superblock* primary = nullptr);
// Seals sb into a block for location blocknr (0 or the backup) and writes it (no flush).
Status write_superblock(BlockDevice& dev, const Superblock& sb, uint64_t blocknr, uint64_t seq);

}  // namespace stablefs
