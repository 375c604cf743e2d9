// Fuzz target: every item kind's decoder (fs/format/fs_items.h) on any bytes: the first byte
// picks the kind, the next 17 make the key, the rest is the value. Each decode must refuse
// what it cannot take with a status, never read past the value or trust a length in it.
#include <cstdint>
#include <cstring>
#include <span>

#include "fs/format/fs_items.h"
#include "fs/format/posix_acl.h"

using namespace stablefs;

namespace {

uint64_t get64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 18) return 0;
  const Key key{get64(data + 1), data[9], get64(data + 10)};
  const std::span<const uint8_t> v(data + 18, size - 18);
  switch (data[0] % 8) {
    case 0:
      (void)InodeRecord::decode(v, key.objectid);
      break;
    case 1:
      (void)DirentRecord::decode(v, key);
      break;
    case 2:
      (void)ExtentRecord::decode(v, key);
      break;
    case 3:
      (void)XattrRecord::decode(v, key);
      break;
    case 4:
      (void)OrphanRecord::decode(v, key);
      break;
    case 5:
      (void)CsumGroup::decode(v, key);
      break;
    case 6:
      (void)ScrubStateRecord::decode(v, key);
      break;
    case 7:
      (void)parse_acl_xattr(v);
      break;
  }
  return 0;
}
