#include "fs/fuse/current_request.h"

#include <linux/fuse.h>

#include <cstring>

namespace stablefs {
namespace {

thread_local std::span<const char> current_bytes;
thread_local RequestMemory* current_memory = nullptr;

}  // namespace

CurrentRequestScope::CurrentRequestScope(std::span<const char> bytes, RequestMemory* memory) {
  current_bytes = bytes;
  current_memory = memory;
}

CurrentRequestScope::~CurrentRequestScope() {
  current_bytes = {};
  current_memory = nullptr;
}

std::span<const char> current_request_bytes() { return current_bytes; }

std::shared_ptr<const void> keep_receive_buffer() { return current_memory ? current_memory->keep() : nullptr; }

std::optional<uint32_t> current_write_flags() {
  if (current_bytes.size() < sizeof(fuse_in_header) + sizeof(fuse_write_in)) return std::nullopt;
  fuse_in_header in;
  std::memcpy(&in, current_bytes.data(), sizeof in);
  if (in.opcode != FUSE_WRITE) return std::nullopt;
  fuse_write_in w;
  std::memcpy(&w, current_bytes.data() + sizeof in, sizeof w);
  return w.write_flags;
}

std::optional<uint32_t> current_open_flags() {
  if (current_bytes.size() < sizeof(fuse_in_header) + sizeof(fuse_open_in)) return std::nullopt;
  fuse_in_header in;
  std::memcpy(&in, current_bytes.data(), sizeof in);
  if (in.opcode != FUSE_OPEN) return std::nullopt;
  fuse_open_in o;
  std::memcpy(&o, current_bytes.data() + sizeof in, sizeof o);
  return o.open_flags;
}

}  // namespace stablefs
