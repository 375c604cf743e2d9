// Fuzz target: a superblock as a device gives it — read_superblock over a device holding the
// input as block 0 (header verification, then every field's decode and validation). The first
// byte chooses whether the block is sealed again (its checksum recomputed) first, so the field
// checks are reached and not only the checksum's.
#include <cstdint>
#include <cstring>
#include <vector>

#include "bounce/memory_device.h"
#include "fs/format/format.h"
#include "fs/format/superblock_io.h"

using namespace stablefs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  constexpr size_t kDevice = 4u << 20;  // the seeds come from a 4 MiB image
  std::vector<uint8_t> image(kDevice, 0);
  const size_t n = std::min(size - 1, size_t{65536});
  std::memcpy(image.data(), data + 1, n);
  uint32_t block_size = 0;
  Uuid uuid{};
  if ((data[0] & 1) && Superblock::peek({image.data(), std::min(n, size_t{4096})}, &block_size, &uuid) &&
      block_size >= 512 && block_size <= 65536 && (block_size & (block_size - 1)) == 0)
    stamp_block({image.data(), block_size}, BlockType::kSuperblock, 0, uuid, header_seq({image.data(), block_size}));
  MemoryDevice dev(std::move(image), "fuzz");
  Result<Superblock> sb = read_superblock(dev, SuperblockCopy::kPrimary);
  if (sb.ok()) (void)read_superblock(dev, SuperblockCopy::kBackup, &*sb);
  (void)read_superblock(dev, SuperblockCopy::kBackup);
  return 0;
}
