// Portable inner loops for the CPU kernels. Written with independent accumulators so the
// compiler vectorizes them without -ffast-math; on x86-64 the hot ones are cloned for
// x86-64-v3 (AVX2/FMA) and chosen at load time by the loader. The association order is
// fixed, so a result does not depend on how work was split across threads.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/dtype.h"

// (GCC only; not under AddressSanitizer unless KILN_TILES_UNDER_ASAN asks for it: tools/test-tiles-asan.sh)
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    (!defined(__SANITIZE_ADDRESS__) || defined(KILN_TILES_UNDER_ASAN))
#define KILN_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
// Hand-written AVX2+FMA kernels (kernels/cpu/*.cpp), run where the clones above run their
// x86-64-v3 versions (kiln::cpu_has_x86_64_v3), so both give the same bits.
#define KILN_X86_64_V3_KERNELS 1
#else
#define KILN_TARGET_CLONES
#endif

namespace kiln {

#ifdef KILN_X86_64_V3_KERNELS
// Whether this CPU runs the x86-64-v3 clones (AVX2, FMA, F16C, BMI2, …), as the loader chose them.
inline bool cpu_has_x86_64_v3() {
  static const bool v3 = __builtin_cpu_supports("x86-64-v3");
  return v3;
}

// Whether matmul and attention run their AVX-512 tiles: the CPU has AVX-512 F and DQ besides
// x86-64-v3, and tests have not turned them off (set_avx512_tiles_for_tests(false) runs the AVX2
// tiles instead, so both are covered on such a CPU; the results are the same bits). Read on the
// calling thread before work is handed to the pool, or by row helpers (weight_row_dot,
// weight_row_values) on the workers: tests toggle it only between kernel calls.
bool cpu_has_avx512();
void set_avx512_tiles_for_tests(bool on);
#endif

// sum_i a[i]·b[i] with 16 lanes of partial sums, combined pairwise.
float dot_f32(const float* a, const float* b, int64_t n);

// sum_i a[i]·bf16(b[i]), widening in registers. The same lanes and association order as
// dot_f32, so it is bit-identical to dot_f32 on the widened values.
float dot_f32_bf16(const float* a, const uint16_t* b, int64_t n);

// sum_i a[i]·float(b[i]) over int8 b, widening in registers; bit-identical to dot_f32 on the widened
// values, as dot_f32_bf16 is.
float dot_f32_i8(const float* a, const int8_t* b, int64_t n);

// Values i0 … i0+n of a packed i4 row (kernels/dtype.h; group a multiple of 32, as matmul's verifier
// requires) dequantized into dst: value i is the f32 product float(nibble_i − z) · scales[i / group],
// z = zeros[i / group] (asymmetric), or 8 without zeros (symmetric: nibble − 8 is q). Whole 32-value
// blocks run on the tiles of kernels/cpu/tiles.h where the CPU has them (the same bits).
void dequant_i4(const uint8_t* row, const float* scales, int64_t group, int64_t i0, int64_t n, float* dst,
                const int8_t* zeros = nullptr);

// sum_i a[i]·value_i over a packed i4 row of n values, the values as dequant_i4's (group and n
// multiples of 32), widening in registers; bit-identical to dot_f32 on dequant_i4's values.
float dot_f32_i4(const float* a, const uint8_t* row, const float* scales, int64_t group, int64_t n,
                 const int8_t* zeros = nullptr);

// Values i0 … i0+n of an f8e4m3 row (kernels/dtype.h) dequantized into dst: value i is the f32 product
// f8e4m3_value(row[i]) · scales[i / group] (group a multiple of 16 or the whole row, as matmul's
// verifier requires). From a row's start (i0 = 0) on the tiles where the CPU has them (the same bits).
void dequant_f8(const uint8_t* row, const float* scales, int64_t group, int64_t i0, int64_t n, float* dst);

// sum_i a[i]·(f8e4m3_value(row[i]) · scales[i / group]) over an f8e4m3 row of n values, widening in
// registers; bit-identical to dot_f32 on dequant_f8's values.
float dot_f32_f8(const float* a, const uint8_t* row, const float* scales, int64_t group, int64_t n);

// sum_i a[i]·w[i] for a weight row of any float dtype; f16 rows are widened into scratch
// (n floats), f32 and bf16 rows are read in place.
float dot_f32_any(const float* a, const void* w, DType t, int64_t n, float* scratch);

// Row `row` of a weight of rows of k values dotted with x, as matmul reads its dtype (kernels/matmul.h):
// float rows (f16 widened into scratch, k floats), i8 rows scaled after the product (scale: a scale
// a row), i4 and f8e4m3 rows dequantized in registers (scale: groups of `group` values a row; zero:
// asymmetric i4's zero points, shaped as the scales, or null).
float weight_row_dot(const float* x, const void* w, DType t, const float* scale, int64_t group, int64_t row, int64_t k,
                     float* scratch, const int8_t* zero = nullptr);

// Up to kWeightRowsDotMax rows at once (rows[0 … n), any rows of w, in any order): out[i] =
// weight_row_dot(…, rows[i], …) bit for bit, with the rows' weights read side by side (the matmul's
// decode tiles of 4 rows) where weight_row_dot takes a one-row tile.
constexpr int kWeightRowsDotMax = 4;
void weight_rows_dot(const float* x, const void* w, DType t, const float* scale, int64_t group, const int64_t* rows,
                     int n, int64_t k, float* scratch, float* out, const int8_t* zero = nullptr);

// That row's k values into dst: float rows widened, i8 the f32 products q·scale, i4 and f8e4m3 as
// dequant_i4 and dequant_f8 give them.
void weight_row_values(const void* w, DType t, const float* scale, int64_t group, int64_t row, int64_t k, float* dst,
                       const int8_t* zero = nullptr);

// dot_f32's lanes over many dot products at once, for a matrix read down its columns: lanes holds 16
// rows of n sums (zeroed by the caller); lane_accumulate adds a·w[i] to sum i of lane (j mod 16) for the
// j-th term, as dot_f32 adds a[j]·b[j] to its lane j mod 16, and lanes_reduce then combines the 16 lanes
// pairwise in dot_f32's order into lanes[0 … n). Output i is then dot_f32's bits for the terms given.
void lane_accumulate(float a, const float* __restrict w, float* __restrict lane, int64_t n);
void lanes_reduce(float* lanes, int64_t n);

// e^x for x <= 0 (and NaN, kept): Cephes' degree-6 polynomial on r = x − n·ln 2, n = round(x·log2 e),
// times 2^n; within 2 ulp of the exact value; 0 below ln(FLT_MIN) (≈ −87.34), where the exact value
// is subnormal or 0. exp_nonpositive_x8 (kernels/cpu/simd.cpp) gives the same bits, 8 at a time.
float exp_nonpositive(float x);

// silu(g) = g / (1 + e^−g), as g / (1 + exp_nonpositive(−g)) for g >= 0 and g·e / (1 + e), e =
// exp_nonpositive(g), below (the same value to rounding, and e^x never overflows); NaN stays NaN,
// +inf gives inf and −inf NaN as the formula does. Below ln(FLT_MIN) ≈ −87.34 e is 0, so silu is −0
// where the exact value is a float of at most about 1e-36 in magnitude.
float silu(float g);
// h[i] = silu(g[i]) · u[i] for i < n: 8 at a time on x86-64-v3 (exp_nonpositive_x8), the same bits.
void silu_mul(const float* g, const float* u, float* h, int64_t n);

// s[0..n) ← softmax(s) in place: max-subtracted, e^x by exp_nonpositive (8 lanes at a time on
// x86-64-v3, the same bits), summed in double over 8 lanes (element j into lane j mod 8, combined
// pairwise), each scaled by the sum's reciprocal. A sink (GPT-OSS's per-head learned logit; −inf:
// none) joins the max and the sum as one more score whose weight is dropped.
void softmax_inplace(float* s, int64_t n, float sink = -INFINITY);

// sum_i x[i]² in double: element i into lane i mod 8, the lanes combined pairwise (softmax_inplace's
// sum). Each square is exact in double, so fused or not the clones give the same bits.
double sum_squares(const float* x, int64_t n);

// y[j] += s·x[j]
void axpy_f32(float s, const float* x, float* y, int64_t n);

}  // namespace kiln
