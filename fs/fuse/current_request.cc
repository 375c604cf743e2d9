#include "fs/fuse/current_request.h"

#include <linux/fuse.h>

#include <cstring>

namespace stablefs {
namespace {

thread_local std::span<const char> current_bytes;
thread_local RequestMemory* current_memory = nullptr;

// The fixed arguments (the struct after fuse_in_header) of the current request when it is an
// `opcode` request long enough to hold them; nullopt otherwise.
template <typename Arguments>
std::optional<Arguments> current_arguments(uint32_t opcode) {
  if (current_bytes.size() < sizeof(fuse_in_header) + sizeof(Arguments)) return std::nullopt;
  fuse_in_header in;
  std::memcpy(&in, current_bytes.data(), sizeof in);
  if (in.opcode != opcode) return std::nullopt;
  Arguments args;
  std::memcpy(&args, current_bytes.data() + sizeof in, sizeof args);
  return args;
}

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
  const std::optional<fuse_write_in> w = current_arguments<fuse_write_in>(FUSE_WRITE);
  return w ? std::optional<uint32_t>(w->write_flags) : std::nullopt;
}

std::optional<uint32_t> current_write_file_flags() {
  const std::optional<fuse_write_in> w = current_arguments<fuse_write_in>(FUSE_WRITE);
  return w ? std::optional<uint32_t>(w->flags) : std::nullopt;
}

std::optional<uint32_t> current_open_flags() {
  const std::optional<fuse_open_in> o = current_arguments<fuse_open_in>(FUSE_OPEN);
  return o ? std::optional<uint32_t>(o->open_flags) : std::nullopt;
}

}  // namespace stablefs
