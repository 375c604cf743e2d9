// The daemon's own memory as the kernel counts it (/proc/self/status), for stablefs stats.
#pragma once

#include <cstdint>

namespace stablefs {

struct ProcessMemory {
  uint64_t resident_kib = 0;  // VmRSS: resident now
  uint64_t peak_kib = 0;      // VmHWM: the most ever resident
};

// Reads /proc/self/status; zeros for what it cannot read. Any thread.
ProcessMemory process_memory();

}  // namespace stablefs
