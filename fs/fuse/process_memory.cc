#include "fs/fuse/process_memory.h"

#include <cstdio>
#include <cstring>

namespace stablefs {

ProcessMemory process_memory() {
  ProcessMemory m;
  std::FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return m;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long long kib = 0;
    if (std::sscanf(line, "VmRSS: %llu kB", &kib) == 1) m.resident_kib = kib;
    if (std::sscanf(line, "VmHWM: %llu kB", &kib) == 1) m.peak_kib = kib;
  }
  std::fclose(f);
  return m;
}

}  // namespace stablefs
