// The tokenizer's lookups, built once per plan load: token string → id and (left, right) merge →
// (rank, merged id), as open-addressing tables in one allocation each (no node per entry, no
// rehash while they fill, nothing to free one by one). Both hash with a seed drawn per process,
// so a plan's strings or merges cannot be chosen to collide; a string lookup compares the bytes,
// so a collision costs a probe, never a wrong id.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace kiln {

// Polynomial hashes of byte strings modulo the Mersenne prime 2^61 - 1, with a base drawn at
// random per process: the hash of a + b follows from the parts' hashes and b's length, so the
// merge table is built in time linear in the vocabulary's bytes (no concatenation per merge).
// Two different strings of length <= L collide with probability <= L / 2^61.
class StringHash {
 public:
  static constexpr uint64_t kP = (uint64_t(1) << 61) - 1;
  StringHash();
  uint64_t of(std::string_view s) const {
    uint64_t h = 0;
    for (unsigned char c : s) h = add(mul(h, base_), c + 1);
    return h;
  }
  uint64_t concat(uint64_t ha, uint64_t hb, uint64_t len_b) const { return add(mul(ha, pow(len_b)), hb); }

 private:
  static uint64_t mul(uint64_t a, uint64_t b) {
    const unsigned __int128 r = (unsigned __int128)a * b;
    uint64_t x = uint64_t(r & kP) + uint64_t(r >> 61);
    x = (x & kP) + (x >> 61);
    return x >= kP ? x - kP : x;
  }
  static uint64_t add(uint64_t a, uint64_t b) {
    const uint64_t r = a + b;
    return r >= kP ? r - kP : r;
  }
  uint64_t pow(uint64_t e) const;
  uint64_t base_ = 0;
};

// String → id. The strings are views the caller keeps alive (the tokenizer's own data).
class TokenIdTable {
 public:
  // Room for n strings; forgets any earlier contents. put() needs it first, for every string.
  void reserve(size_t n);
  // s (with h = StringHash::of(s)) → id. A string already present keeps its id unless `replace`.
  void put(std::string_view s, uint64_t h, int32_t id, bool replace);
  // The id of s, or -1.
  int32_t find(std::string_view s, uint64_t h) const;
  // The id of a + b, whose hash is h, without concatenating them; -1 if absent.
  int32_t find_concat(std::string_view a, std::string_view b, uint64_t h) const;

 private:
  struct Slot {
    uint64_t hash;
    const char* bytes;
    uint32_t len;
    int32_t id;  // -1: empty
  };
  template <typename Eq>
  int64_t probe(uint64_t h, size_t len, Eq eq) const;  // the slot holding the string, or -1 - the empty slot
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
};

// (left id, right id) → (rank, merged id); the first merge of a pair wins.
class MergeTable {
 public:
  void reserve(size_t n);  // room for n pairs; put() needs it first, for every pair
  // False when the pair is already present (the earlier rank stays).
  bool put(int32_t left, int32_t right, int32_t rank, int32_t merged);
  struct Merge {
    int32_t rank, id;  // rank -1: no merge
  };
  Merge find(int32_t left, int32_t right) const {
    if (slots_.empty()) return {-1, -1};
    const uint64_t key = pack(left, right);
    for (uint64_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.rank < 0) return {-1, -1};
      if (s.key == key) return {s.rank, s.id};
    }
  }

 private:
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  uint64_t slot_of(uint64_t key) const {
    uint64_t z = key ^ seed_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) & mask_;
  }
  struct Slot {
    uint64_t key;
    int32_t rank, id;  // rank -1: empty
  };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0, seed_ = 0;
};

// A seed drawn per process (the clock and std::random_device, when there is one).
uint64_t random_seed();

}  // namespace kiln
