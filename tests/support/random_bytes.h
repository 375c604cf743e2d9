// random_bytes: n bytes of a deterministic pseudo-random pattern chosen by seed, for tests that
// write data and compare it when read back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace stablefs::test {

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

}  // namespace stablefs::test
