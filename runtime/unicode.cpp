// UTF-8, the Unicode classes of the pre-tokenizers, NFC and CLIP's normalizer (runtime/text.h).
#include <algorithm>

#include "runtime/text.h"

namespace kiln::text {

namespace {

struct CodeRange {
  uint32_t lo, hi;
};
struct CombiningClass {
  uint32_t cp, ccc;
};
struct Decomposition {
  uint32_t cp, a, b;  // b = 0: a singleton
};
struct Composition {
  uint32_t a, b, cp;
};
struct LowerMapping {
  uint32_t cp, l[3];  // unused slots are 0
};
#include "runtime/unicode_tables.inc"

template <size_t N>
bool in(const CodeRange (&t)[N], uint32_t cp) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (cp > t[mid].hi) lo = mid + 1;
    else if (cp < t[mid].lo) hi = mid;
    else return true;
  }
  return false;
}

template <typename T, size_t N, typename Key>
const T* find_sorted(const T (&t)[N], Key key, Key (*key_of)(const T&)) {
  const T* it = std::lower_bound(t, t + N, key, [&](const T& e, Key k) { return key_of(e) < k; });
  return it != t + N && key_of(*it) == key ? it : nullptr;
}

uint32_t ccc_of(uint32_t c) {
  const CombiningClass* e = find_sorted(
      kCombiningClass, c, +[](const CombiningClass& x) { return x.cp; });
  return e ? e->ccc : 0;
}

constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(uint32_t c, std::vector<uint32_t>* out) {
  if (c >= kSBase && c < kSBase + kSCount) {  // Hangul syllable
    const uint32_t s = c - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out->push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* d = find_sorted(
      kDecomposition, c, +[](const Decomposition& x) { return x.cp; });
  if (!d) {
    out->push_back(c);
    return;
  }
  decompose(d->a, out);
  if (d->b) decompose(d->b, out);
}

uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const Composition* e = std::lower_bound(
      std::begin(kComposition), std::end(kComposition), std::make_pair(a, b),
      [](const Composition& x, const std::pair<uint32_t, uint32_t>& k) { return std::make_pair(x.a, x.b) < k; });
  return e != std::end(kComposition) && e->a == a && e->b == b ? e->cp : 0;
}

}  // namespace

// Unicode NFC (UAX #15): full canonical decomposition, canonical ordering, canonical composition.
std::vector<uint32_t> nfc(const std::vector<uint32_t>& in) {
  std::vector<uint32_t> d;
  for (uint32_t c : in) decompose(c, &d);
  for (size_t i = 0; i < d.size();) {  // stable-sort each run of non-starters by combining class
    size_t j = i;
    while (j < d.size() && ccc_of(d[j]) != 0) ++j;
    if (j > i + 1)
      std::stable_sort(d.begin() + long(i), d.begin() + long(j),
                       [](uint32_t x, uint32_t y) { return ccc_of(x) < ccc_of(y); });
    i = j == i ? i + 1 : j;
  }
  std::vector<uint32_t> out;
  int64_t starter = -1;
  uint32_t last_cc = 0;
  for (uint32_t c : d) {
    const uint32_t cc = ccc_of(c);
    if (starter >= 0) {
      const bool adjacent = int64_t(out.size()) - 1 == starter;
      if (adjacent || (last_cc != 0 && last_cc < cc)) {
        if (const uint32_t k = compose(out[size_t(starter)], c)) {
          out[size_t(starter)] = k;
          continue;
        }
      }
    }
    if (cc == 0) starter = int64_t(out.size());
    last_cc = cc;
    out.push_back(c);
  }
  return out;
}

void append_utf8(uint32_t c, std::string* s) {
  if (c < 0x80) {
    *s += char(c);
  } else if (c < 0x800) {
    *s += char(0xC0 | (c >> 6));
    *s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    *s += char(0xE0 | (c >> 12));
    *s += char(0x80 | ((c >> 6) & 0x3F));
    *s += char(0x80 | (c & 0x3F));
  } else {
    *s += char(0xF0 | (c >> 18));
    *s += char(0x80 | ((c >> 12) & 0x3F));
    *s += char(0x80 | ((c >> 6) & 0x3F));
    *s += char(0x80 | (c & 0x3F));
  }
}

std::string nfc_utf8(std::string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return uint8_t(c) < 0x80; })) return std::string(s);  // ASCII: NFC
  std::string out;
  std::vector<uint32_t> run;
  auto flush = [&]() {
    for (uint32_t c : nfc(run)) append_utf8(c, &out);
    run.clear();
  };
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const uint32_t c = next_cp(s, i, &len);
    if (c == kInvalid) {
      flush();
      out.append(s.substr(i, len));
    } else {
      run.push_back(c);
    }
    i += len;
  }
  flush();
  return out;
}

bool lowercase_utf8(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size();) {
    size_t len;
    const uint32_t c = next_cp(text, i, &len);
    if (c == kInvalid || c == 0x03A3) return false;  // (Python lowers Σ by its context: final sigma)
    const LowerMapping* m = find_sorted(
        kLowercase, c, +[](const LowerMapping& x) { return x.cp; });
    if (!m) out->append(text.substr(i, len));
    else
      for (uint32_t l : m->l)
        if (l) append_utf8(l, out);
    i += len;
  }
  return true;
}

std::string clip_normalize(std::string_view text) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < text.size();) {
    size_t len;
    const uint32_t c = next_cp(text, i, &len);
    cps.push_back(c == kInvalid ? 0xFFFD : c);
    i += len;
  }
  std::string out;
  bool in_space = false;
  for (uint32_t c : nfc(cps)) {
    if (in(kWhiteSpace, c)) {
      if (!in_space) out += ' ';
      in_space = true;
      continue;
    }
    in_space = false;
    const LowerMapping* m = find_sorted(
        kLowercase, c, +[](const LowerMapping& x) { return x.cp; });
    if (!m) {
      append_utf8(c, &out);
      continue;
    }
    for (uint32_t l : m->l)
      if (l) append_utf8(l, &out);
  }
  return out;
}

// Decodes one code point at s[i]; *len gets its byte length (1 for an invalid byte).
uint32_t next_cp(std::string_view s, size_t i, size_t* len) {
  const uint8_t c = uint8_t(s[i]);
  *len = 1;
  if (c < 0x80) return c;
  int n = 0;
  uint32_t cp = 0, min = 0;
  if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07, min = 0x10000;
  else return kInvalid;
  for (int k = 1; k <= n; ++k) {
    if (i + size_t(k) >= s.size()) return kInvalid;
    const uint8_t d = uint8_t(s[i + size_t(k)]);
    if ((d & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  *len = size_t(n) + 1;
  return cp;
}

bool is_letter(uint32_t c) { return c != kInvalid && in(kLetter, c); }
bool is_mark(uint32_t c) { return c != kInvalid && in(kMark, c); }
bool is_punct_or_symbol(uint32_t c) { return c != kInvalid && (in(kPunct, c) || in(kSymbol, c)); }
bool is_number(uint32_t c) { return c != kInvalid && in(kNumber, c); }
bool is_space(uint32_t c) { return c != kInvalid && in(kWhiteSpace, c); }

int decimal_digit(uint32_t c) {
  if (c == kInvalid) return -1;
  const uint32_t* z = std::upper_bound(std::begin(kDecimalZero), std::end(kDecimalZero), c);
  return z != std::begin(kDecimalZero) && c - z[-1] < 10 ? int(c - z[-1]) : -1;
}

Cps::Cps(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len;
    cp.push_back(next_cp(s, i, &len));
    off.push_back(i);
    i += len;
  }
  off.push_back(s.size());
}

// Each maximal subpart: the longest prefix of some well-formed sequence, or one byte (Unicode §3.9).
std::string lossy_utf8(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    if (next_cp(s, i, &len) != kInvalid) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    const uint8_t c = uint8_t(s[i]);
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    size_t j = i + 1;
    for (size_t k = 0; k < need && j < s.size(); ++k, ++j) {
      const uint8_t d = uint8_t(s[j]);
      if (k == 0 ? (d < lo || d > hi) : (d & 0xC0) != 0x80) break;
    }
    out += "\xEF\xBF\xBD";
    i = j;
  }
  return out;
}

}  // namespace kiln::text
