// Little-endian fixed-width field access for on-disk structures.
//
// Every on-disk integer is read and written through these helpers at an explicit byte
// offset; no on-disk struct is ever overlaid on a buffer. Callers bounds-check offsets.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace stablefs {

template <typename T>
inline T bswap(T v) {
  if constexpr (sizeof(T) == 2) return __builtin_bswap16(v);
  else if constexpr (sizeof(T) == 4) return __builtin_bswap32(v);
  else return __builtin_bswap64(v);
}

template <typename T>
inline T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) v = bswap(v);
  return v;
}

template <typename T>
inline void store_le(uint8_t* p, T v) {
  if constexpr (std::endian::native == std::endian::big) v = bswap(v);
  std::memcpy(p, &v, sizeof(T));
}

inline uint16_t get16(const uint8_t* p) { return load_le<uint16_t>(p); }
inline uint32_t get32(const uint8_t* p) { return load_le<uint32_t>(p); }
inline uint64_t get64(const uint8_t* p) { return load_le<uint64_t>(p); }
inline void put16(uint8_t* p, uint16_t v) { store_le(p, v); }
inline void put32(uint8_t* p, uint32_t v) { store_le(p, v); }
inline void put64(uint8_t* p, uint64_t v) { store_le(p, v); }

}  // namespace stablefs
