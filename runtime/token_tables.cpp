#include "runtime/token_tables.h"

#include <chrono>
#include <cstring>
#include <random>

namespace kiln {

namespace {

// Capacity: a power of two with the table at most 3/4 full, so every probe ends at an empty slot.
uint64_t capacity_for(size_t n) {
  uint64_t c = 16;
  while (c / 4 * 3 < n + 1) c *= 2;
  return c;
}

bool same_bytes(const char* a, const char* b, size_t n) { return n == 0 || std::memcmp(a, b, n) == 0; }

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t random_seed() {
  uint64_t seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  try {
    std::random_device rd;
    seed ^= (uint64_t(rd()) << 32) ^ rd();
  } catch (...) {  // no entropy source: the clock alone
  }
  return mix(seed);
}

StringHash::StringHash() : base_(random_seed() % (kP - 256) + 256) {}

uint64_t StringHash::pow(uint64_t e) const {
  uint64_t r = 1, b = base_;
  for (; e; e >>= 1, b = mul(b, b))
    if (e & 1) r = mul(r, b);
  return r;
}

void TokenIdTable::reserve(size_t n) {
  const uint64_t c = capacity_for(n);
  slots_.assign(c, Slot{0, nullptr, 0, -1});
  mask_ = c - 1;
}

template <typename Eq>
int64_t TokenIdTable::probe(uint64_t h, size_t len, Eq eq) const {
  for (uint64_t i = mix(h) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1 - int64_t(i);
    if (s.hash == h && s.len == len && eq(s.bytes)) return int64_t(i);
  }
}

void TokenIdTable::put(std::string_view s, uint64_t h, int32_t id, bool replace) {
  const int64_t i = probe(h, s.size(), [&](const char* p) { return same_bytes(p, s.data(), s.size()); });
  if (i >= 0) {
    if (replace) slots_[size_t(i)].id = id;
    return;
  }
  slots_[size_t(-1 - i)] = Slot{h, s.data(), uint32_t(s.size()), id};
}

int32_t TokenIdTable::find(std::string_view s, uint64_t h) const {
  if (slots_.empty()) return -1;
  const int64_t i = probe(h, s.size(), [&](const char* p) { return same_bytes(p, s.data(), s.size()); });
  return i >= 0 ? slots_[size_t(i)].id : -1;
}

int32_t TokenIdTable::find_concat(std::string_view a, std::string_view b, uint64_t h) const {
  if (slots_.empty()) return -1;
  const int64_t i = probe(h, a.size() + b.size(), [&](const char* p) {
    return same_bytes(p, a.data(), a.size()) && same_bytes(p + a.size(), b.data(), b.size());
  });
  return i >= 0 ? slots_[size_t(i)].id : -1;
}

void MergeTable::reserve(size_t n) {
  const uint64_t c = capacity_for(n);
  slots_.assign(c, Slot{0, -1, -1});
  mask_ = c - 1;
  seed_ = random_seed();
}

bool MergeTable::put(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  const uint64_t key = pack(left, right);
  for (uint64_t i = slot_of(key);; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.rank < 0) {
      s = Slot{key, rank, merged};
      return true;
    }
    if (s.key == key) return false;
  }
}

}  // namespace kiln
