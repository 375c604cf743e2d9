#include "fs/inode/checksum_store.h"

#include "fs/format/fs_items.h"

namespace stablefs {
namespace {

Key group_key(uint64_t group) { return {0, kItemCsumGroup, group}; }

Result<CsumGroup> load_group(BTree& tree, uint64_t group) {
  std::vector<uint8_t> v;
  SFS_ASSIGN(bool found, tree.lookup(group_key(group), &v));
  if (!found) return CsumGroup{};
  return CsumGroup::decode(v, group_key(group));
}

Status store_group(BTree& tree, uint64_t group, const CsumGroup& g) {
  if (g.present == 0) {
    Status st = tree.remove(group_key(group));
    return st.code() == ENOENT ? Status() : st;
  }
  return tree.put(group_key(group), g.encode());
}

}  // namespace

Status ChecksumStore::get(uint64_t dev_block, std::span<std::optional<uint64_t>> out) {
  uint64_t loaded_group = ~0ull;
  CsumGroup g;
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t b = dev_block + i;
    if (b / kCsumGroupBlocks != loaded_group) {
      loaded_group = b / kCsumGroupBlocks;
      SFS_ASSIGN(g, load_group(tree_, loaded_group));
    }
    uint64_t bit = b % kCsumGroupBlocks;
    if (g.present & (1ull << bit)) out[i] = g.sums[bit];
    else out[i].reset();
  }
  return {};
}

Status ChecksumStore::set(uint64_t dev_block, std::span<const uint64_t> sums) {
  size_t i = 0;
  while (i < sums.size()) {
    uint64_t group = (dev_block + i) / kCsumGroupBlocks;
    SFS_ASSIGN(CsumGroup g, load_group(tree_, group));
    for (; i < sums.size() && (dev_block + i) / kCsumGroupBlocks == group; ++i) {
      uint64_t bit = (dev_block + i) % kCsumGroupBlocks;
      g.present |= 1ull << bit;
      g.sums[bit] = sums[i];
    }
    SFS_TRY(store_group(tree_, group, g));
  }
  return {};
}

Status ChecksumStore::drop(uint64_t dev_block, uint64_t nblocks) {
  uint64_t b = dev_block;
  const uint64_t end = dev_block + nblocks;
  while (b < end) {
    uint64_t group = b / kCsumGroupBlocks;
    SFS_ASSIGN(CsumGroup g, load_group(tree_, group));
    for (; b < end && b / kCsumGroupBlocks == group; ++b) g.present &= ~(1ull << (b % kCsumGroupBlocks));
    SFS_TRY(store_group(tree_, group, g));
  }
  return {};
}

}  // namespace stablefs
