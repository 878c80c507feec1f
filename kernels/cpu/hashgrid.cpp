// Multiresolution hash-grid encoding on the CPU (tiny-cuda-nn semantics, see
// inr/encodings/hashgrid.py): forward, and backward to the table and to x.
//
// x [N, D] float32 in [0, 1] (the Python side checks), table [R, F] float32 shared by all points,
// output [N, L*F] level-major. Per level: pos = x * scale + 0.5 rounded ONCE to float32 (computed
// exactly in double, then rounded: the same as tcnn's fmaf and the PyTorch path), cell =
// floor(pos), frac = pos - cell; rows are dense (x + y*res + z*res^2) or XOR-hashed, in uint32
// arithmetic, then `% size` plus the level's row offset.
//
// Forward and the x-gradient parallelise over points. The table gradient parallelises over
// LEVELS: each level owns disjoint table rows, so no two threads ever add into the same row, and
// every row accumulates its points in index order: deterministic and race-free. Levels are
// dealt out round-robin to G = min(L, threads) groups (coarse levels fit in cache, fine ones do
// not, so interleaving balances the groups). With x-gradients each group writes a private
// [N, D] partial sum; partials are added in group order afterwards.
//
// That scalar code is the portable path. Where the CPU has AVX2 and FMA (checked at run time; the
// build has no -march flags) the AVX2 path below runs instead: 8 points per vector for the index
// and weight arithmetic (positions by float32 FMA, as tcnn's fmaf), points in tiles of 128 taken
// level by level, 2-D dense levels with F = 2 by 16-byte row pairs, the x-gradient in its own
// pass parallel over points (so results do not depend on the thread count). Outputs and
// gradients come from a buffer pool (pool.h): page faults on fresh memory cost more than the
// encoding on the machines measured. The backward of the backward (eikonal losses) is scalar.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "cpu_features.h"
#include "pool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#if INR_HAVE_AVX2_PATH
#define INR_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace {

constexpr uint32_t kPrimes[3] = {1u, 2654435761u, 805459861u};

struct Level {
  double scale;     // float32 value of tcnn's scale, widened
  float scale_f;
  uint32_t res;
  uint32_t size;
  uint32_t mask;    // size - 1 when size is a power of two, else 0
  int64_t offset;
  bool hashed;
  bool pow2;
  bool simd;        // the AVX2 path's index arithmetic is valid for this level (see simd_ready)
};

std::vector<Level> make_levels(const torch::Tensor& scales, const torch::Tensor& meta) {
  // scales: float64 [L]; meta: int64 [L, 4] = (res, size, offset, hashed)
  auto s = scales.accessor<double, 1>();
  auto m = meta.accessor<int64_t, 2>();
  std::vector<Level> lv(s.size(0));
  for (int64_t l = 0; l < s.size(0); ++l) {
    Level& v = lv[l];
    v.scale = s[l];
    v.scale_f = static_cast<float>(s[l]);
    v.res = static_cast<uint32_t>(m[l][0]);
    v.size = static_cast<uint32_t>(m[l][1]);
    v.offset = m[l][2];
    v.hashed = m[l][3] != 0;
    v.pow2 = (v.size & (v.size - 1)) == 0;
    v.mask = v.pow2 ? v.size - 1 : 0;
    v.simd = false;  // set by simd_ready (depends on d)
  }
  return lv;
}

// Per point and level: the 2^D corner rows and the per-axis weight pairs (1 - s, s).
template <int D, bool SMOOTH>
struct Corners {
  static constexpr int C = 1 << D;
  int64_t row[C];
  float pair[D][2];
  float dsdx[D];  // d s / d x (scale * ds/dfrac)
  float d2sdx2[D];  // d^2 s / d x^2 (smoothstep; 0 for linear)

  inline void compute(const float* xi, const Level& lv) {
    // per axis, the two corner terms (cell + b) * k, k = prime (hashed) or res^j (dense)
    uint32_t term[D][2];
    uint32_t stride = 1;
    for (int j = 0; j < D; ++j) {
      const float pos = static_cast<float>(static_cast<double>(xi[j]) * lv.scale + 0.5);
      // pos >= 0.5 for x in [0, 1] (the Python side checks), so truncation is floor (and needs
      // no SSE4.1 roundss, which a portable build cannot assume)
      const int32_t ci = static_cast<int32_t>(pos);
      const float f = pos - static_cast<float>(ci);
      const uint32_t k = lv.hashed ? kPrimes[j] : stride;
      stride *= lv.res;
      term[j][0] = static_cast<uint32_t>(ci) * k;
      term[j][1] = term[j][0] + k;
      float s = f;
      float ds = 1.0f;
      if (SMOOTH) {
        s = f * f * (3.0f - 2.0f * f);
        ds = 6.0f * f * (1.0f - f);
      }
      pair[j][0] = 1.0f - s;
      pair[j][1] = s;
      dsdx[j] = ds * lv.scale_f;
      d2sdx2[j] = SMOOTH ? (6.0f - 12.0f * f) * lv.scale_f * lv.scale_f : 0.0f;
    }
    for (int c = 0; c < C; ++c) {
      uint32_t idx = term[0][c & 1];
      if (lv.hashed) {
        for (int j = 1; j < D; ++j) idx ^= term[j][(c >> j) & 1];
      } else {
        for (int j = 1; j < D; ++j) idx += term[j][(c >> j) & 1];
      }
      if (lv.pow2) idx &= lv.mask;
      else if (idx >= lv.size) idx %= lv.size;
      row[c] = lv.offset + static_cast<int64_t>(idx);
    }
  }

  inline float weight(int c) const {
    float w = pair[0][c & 1];
    for (int j = 1; j < D; ++j) w *= pair[j][(c >> j) & 1];
    return w;
  }
};

template <int D, int F, bool SMOOTH>
void forward_impl(const float* x, const float* table, float* out, int64_t n, const std::vector<Level>& levels,
                  const int32_t* perm) {
  const int L = static_cast<int>(levels.size());
  const Level* lvp = levels.data();
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    Corners<D, SMOOTH> cr;
    for (int64_t k = begin; k < end; ++k) {
      const int64_t i = perm != nullptr ? perm[k] : k;
      const float* xi = x + i * D;
      float* oi = out + i * static_cast<int64_t>(L) * F;
      for (int l = 0; l < L; ++l) {
        cr.compute(xi, lvp[l]);
        float acc[F];
        for (int f = 0; f < F; ++f) acc[f] = 0.0f;
        for (int c = 0; c < Corners<D, SMOOTH>::C; ++c) {
          const float w = cr.weight(c);
          const float* v = table + cr.row[c] * F;
          for (int f = 0; f < F; ++f) acc[f] += w * v[f];
        }
        for (int f = 0; f < F; ++f) oi[l * F + f] = acc[f];
      }
    }
  });
}

// d <g, out_l> / d x_j for one point and level, added into gx[D].
template <int D, int F, bool SMOOTH>
inline void add_x_grad(const Corners<D, SMOOTH>& cr, const float* table, const float* g, float* gx) {
  constexpr int C = 1 << D;
  float dot[C];
  for (int c = 0; c < C; ++c) {
    const float* v = table + cr.row[c] * F;
    float a = 0.0f;
    for (int f = 0; f < F; ++f) a += v[f] * g[f];
    dot[c] = a;
  }
  for (int j = 0; j < D; ++j) {
    float acc = 0.0f;
    for (int c = 0; c < C; ++c) {
      float w = 1.0f;
      for (int k = 0; k < D; ++k)
        if (k != j) w *= cr.pair[k][(c >> k) & 1];
      acc += ((c >> j) & 1) ? w * dot[c] : -w * dot[c];
    }
    gx[j] += acc * cr.dsdx[j];
  }
}

template <int D, int F, bool SMOOTH>
void backward_impl(const float* x, const float* table, const float* gout, float* gtable, float* gx,
                   int64_t n, const std::vector<Level>& levels, const int32_t* perm) {
  const int L = static_cast<int>(levels.size());
  const Level* lvp = levels.data();
  const int64_t LF = static_cast<int64_t>(L) * F;
  if (gtable == nullptr) {  // x-gradient only: parallel over points, no partials
    at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
      Corners<D, SMOOTH> cr;
      for (int64_t k = begin; k < end; ++k) {
        const int64_t i = perm != nullptr ? perm[k] : k;
        float acc[D] = {};
        for (int l = 0; l < L; ++l) {
          cr.compute(x + i * D, lvp[l]);
          add_x_grad<D, F, SMOOTH>(cr, table, gout + i * LF + l * F, acc);
        }
        for (int j = 0; j < D; ++j) gx[i * D + j] = acc[j];
      }
    });
    return;
  }
  const int G = std::max(1, std::min(L, at::get_num_threads()));
  std::vector<float> partial;
  if (gx != nullptr && G > 1) partial.assign(static_cast<size_t>(G - 1) * n * D, 0.0f);
  at::parallel_for(0, G, 1, [&](int64_t gbegin, int64_t gend) {
    Corners<D, SMOOTH> cr;
    for (int64_t grp = gbegin; grp < gend; ++grp) {
      float* gxg = gx == nullptr ? nullptr : (grp == 0 ? gx : partial.data() + (grp - 1) * n * D);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = perm != nullptr ? perm[k] : k;
        const float* xi = x + i * D;
        const float* gi = gout + i * LF;
        for (int l = static_cast<int>(grp); l < L; l += G) {
          cr.compute(xi, lvp[l]);
          const float* g = gi + l * F;
          for (int c = 0; c < Corners<D, SMOOTH>::C; ++c) {
            const float w = cr.weight(c);
            float* dst = gtable + cr.row[c] * F;
            for (int f = 0; f < F; ++f) dst[f] += w * g[f];
          }
          if (gxg != nullptr) add_x_grad<D, F, SMOOTH>(cr, table, g, gxg + i * D);
        }
      }
    }
  });
  if (gx != nullptr) {
    for (int grp = 1; grp < G; ++grp) {
      const float* p = partial.data() + static_cast<int64_t>(grp - 1) * n * D;
      at::parallel_for(0, n * D, 16384, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) gx[k] += p[k];
      });
    }
  }
}

// Backward of the backward (losses on dL/dx, e.g. eikonal terms; the CUDA kernel's formulas,
// kernels/csrc/hashgrid_bwd2.cu). With w_c the corner weights, T the table, g = dout and
// ggx / ggT the upstream gradients of dx / dtable:
//   d_dout[l]  = sum_c w_c ggT[c] + (grad w_c . ggx) T[c]
//   dtable[c] += g (grad w_c . ggx)
//   dx        += sum_c (g . ggT[c]) grad w_c + (g . T[c]) (Hess w_c) ggx
// d_dout and dx are per point (parallel over points); dtable is a scatter, partitioned by levels
// as the table gradient is (deterministic). Scalar code: eikonal batches are small.
template <int D, bool SMOOTH>
inline float weight_except(const Corners<D, SMOOTH>& cr, int c, int j, int i) {
  float w = 1.0f;
  for (int k = 0; k < D; ++k)
    if (k != j && k != i) w *= cr.pair[k][(c >> k) & 1];
  return w;
}

// grad w_c (dw) and its dot with gg, for corner c.
template <int D, bool SMOOTH>
inline float corner_dw(const Corners<D, SMOOTH>& cr, int c, const float* gg, float* q, float* dw) {
  float dwg = 0.0f;
  for (int j = 0; j < D; ++j) {
    q[j] = ((c >> j) & 1) ? cr.dsdx[j] : -cr.dsdx[j];
    dw[j] = q[j] * weight_except<D, SMOOTH>(cr, c, j, -1);
    dwg += dw[j] * gg[j];
  }
  return dwg;
}

template <int D, int F, bool SMOOTH>
void backward2_impl(const float* x, const float* table, const float* dout, const float* ggx, const float* ggt,
                    float* d_dout, float* dtable, float* dx, int64_t n, const std::vector<Level>& levels) {
  constexpr int C = 1 << D;
  const int L = static_cast<int>(levels.size());
  const Level* lvp = levels.data();
  const int64_t LF = static_cast<int64_t>(L) * F;
  if (d_dout != nullptr || dx != nullptr) {
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      Corners<D, SMOOTH> cr;
      for (int64_t i = begin; i < end; ++i) {
        float gg[D] = {}, hx[D] = {};
        if (ggx != nullptr)
          for (int j = 0; j < D; ++j) gg[j] = ggx[i * D + j];
        for (int l = 0; l < L; ++l) {
          cr.compute(x + i * D, lvp[l]);
          const float* go = dout + i * LF + l * F;
          float acc[F] = {};
          for (int c = 0; c < C; ++c) {
            float q[D], dw[D];
            const float dwg = corner_dw<D, SMOOTH>(cr, c, gg, q, dw);
            const float* v = table + cr.row[c] * F;
            const float* u = ggt != nullptr ? ggt + cr.row[c] * F : nullptr;
            if (d_dout != nullptr) {
              const float w = cr.weight(c);
              for (int f = 0; f < F; ++f) acc[f] += (u != nullptr ? w * u[f] : 0.0f) + dwg * v[f];
            }
            if (dx != nullptr) {
              float gu = 0.0f, gv = 0.0f;
              for (int f = 0; f < F; ++f) {
                if (u != nullptr) gu += go[f] * u[f];
                gv += go[f] * v[f];
              }
              for (int j = 0; j < D; ++j) {
                // (Hess w_c gg)_j = s''_j W_{-j} gg_j + q_j sum_{k != j} q_k W_{-jk} gg_k
                const float sign = ((c >> j) & 1) ? 1.0f : -1.0f;
                float h = sign * cr.d2sdx2[j] * weight_except<D, SMOOTH>(cr, c, j, -1) * gg[j];
                for (int k = 0; k < D; ++k)
                  if (k != j) h += q[j] * q[k] * weight_except<D, SMOOTH>(cr, c, k, j) * gg[k];
                hx[j] += gu * dw[j] + gv * h;
              }
            }
          }
          if (d_dout != nullptr)
            for (int f = 0; f < F; ++f) d_dout[i * LF + l * F + f] = acc[f];
        }
        if (dx != nullptr)
          for (int j = 0; j < D; ++j) dx[i * D + j] = hx[j];
      }
    });
  }
  if (dtable != nullptr && ggx != nullptr) {
    const int G = std::max(1, std::min(L, at::get_num_threads()));
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      Corners<D, SMOOTH> cr;
      for (int64_t grp = g0; grp < g1; ++grp)
        for (int64_t i = 0; i < n; ++i)
          for (int l = static_cast<int>(grp); l < L; l += G) {
            cr.compute(x + i * D, lvp[l]);
            const float* go = dout + i * LF + l * F;
            for (int c = 0; c < C; ++c) {
              float q[D], dw[D];
              const float dwg = corner_dw<D, SMOOTH>(cr, c, ggx + i * D, q, dw);
              float* dst = dtable + cr.row[c] * F;
              for (int f = 0; f < F; ++f) dst[f] += go[f] * dwg;
            }
          }
    });
  }
}

// ------------------------------------------------------------------------------------------------
// AVX2/FMA path (chosen at run time where the CPU has it; the build itself stays portable).
// Points go 8 at a time (one vector): positions, cells, weights and corner rows are computed
// for 8 points per instruction, then rows are gathered (forward, x-gradient) or scattered
// (table gradient) per point. The same arithmetic runs for any thread count, and the table
// gradient keeps the scalar path's partition (levels to threads, points in order within a level),
// so 1 and 2 threads give bitwise-identical results. The x-gradient is its own pass, parallel
// over points, each point summing its levels in order: also independent of the thread count.

std::atomic<int> g_simd{-1};  // -1: auto (use when the CPU has AVX2+FMA), 0: never, 1: when possible

using inr_cpu::cpu_has_avx2;

// Whether the AVX2 path may run: the CPU has it, it is not switched off, and every level's index
// arithmetic fits its reduction: hashed levels are masked (2^T rows), dense ones reduced by one
// conditional subtraction, valid while the largest corner index res * (1 + res + .. + res^(d-1))
// stays below 2 * size and 2^32; rows must fit in int32.
bool simd_ready(std::vector<Level>& levels, int d) {
  if (g_simd.load() == 0 || !cpu_has_avx2()) return false;
  for (auto& lv : levels) {
    bool ok = lv.offset + static_cast<int64_t>(lv.size) < (int64_t{1} << 31);
    if (lv.hashed) {
      ok = ok && lv.pow2;
    } else {
      uint64_t sum = 0, p = 1;
      for (int j = 0; j < d; ++j) {
        sum += p;
        p *= lv.res;
      }
      const uint64_t top = static_cast<uint64_t>(lv.res) * sum;
      ok = ok && top < 2 * static_cast<uint64_t>(lv.size) && top < (uint64_t{1} << 32);
    }
    lv.simd = ok;
    if (!ok) return false;
  }
  return true;
}

#if INR_HAVE_AVX2_PATH

// Points go in tiles of kTileBlocks blocks (128 points), level by level within a tile: each
// level's rows then stay in L1/L2 across the tile instead of competing with 15 other levels.
// Measured (2-D, L=16, T=2^19, 2^18 points, 2 threads): forward 12.2 -> 8.8 ms, table gradient
// 13.9 -> 10.4 ms vs one block at a time; tiles of 8 to 32 blocks within 10%, 256 slower. A level's
// rows still get their points in index order (tiles in order), so results are unchanged.
constexpr int64_t kTileBlocks = 16;

template <int D>
struct Block8 {
  int64_t idx[8];  // point indices (lanes past `count` repeat the last point)
  int count;
  alignas(32) float xs[D][8];
};

template <int D>
INR_AVX2 inline void load_block(Block8<D>& b, const float* x, int64_t k0, int64_t n, const int32_t* perm) {
  b.count = static_cast<int>(std::min<int64_t>(8, n - k0));
  for (int p = 0; p < 8; ++p) {
    const int64_t k = k0 + std::min(p, b.count - 1);
    b.idx[p] = perm != nullptr ? perm[k] : k;
    for (int j = 0; j < D; ++j) b.xs[j][p] = x[b.idx[p] * D + j];
  }
}

// pos = x * scale + 0.5 rounded once to float32: tcnn's fmaf. (The scalar path rounds the float64
// value instead; the two can differ by an ulp of pos, never in the cell: cell borders are floats.)
INR_AVX2 inline __m256 position8(__m256 x, __m256 scale, __m256 half) { return _mm256_fmadd_ps(x, scale, half); }

// Rows and weights of the 2^D corners for 8 points on one level; with NEED_D also the per-axis
// weight pairs and d s / d x (for the x-gradient).
template <int D, bool SMOOTH, bool NEED_D>
INR_AVX2 inline void corners8(const Block8<D>& b, const Level& lv, int32_t (*row)[8], float (*w)[8], __m256* p0,
                              __m256* p1, __m256* dsdx) {
  constexpr int C = 1 << D;
  const __m256 sc = _mm256_set1_ps(lv.scale_f), half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 q0[D], q1[D];
  __m256i t0[D], t1[D];
  uint32_t stride = 1;
  for (int j = 0; j < D; ++j) {
    const __m256 pos = position8(_mm256_load_ps(b.xs[j]), sc, half);
    const __m256i ci = _mm256_cvttps_epi32(pos);  // pos >= 0.5: truncation is floor
    const __m256 f = _mm256_sub_ps(pos, _mm256_cvtepi32_ps(ci));
    const uint32_t k = lv.hashed ? kPrimes[j] : stride;
    stride *= lv.res;
    t0[j] = j == 0 ? ci : _mm256_mullo_epi32(ci, _mm256_set1_epi32(static_cast<int32_t>(k)));
    t1[j] = _mm256_add_epi32(t0[j], _mm256_set1_epi32(static_cast<int32_t>(k)));
    __m256 s = f;
    if (SMOOTH) s = _mm256_mul_ps(_mm256_mul_ps(f, f), _mm256_sub_ps(_mm256_set1_ps(3.0f), _mm256_add_ps(f, f)));
    q0[j] = _mm256_sub_ps(one, s);
    q1[j] = s;
    if (NEED_D) {
      p0[j] = q0[j];
      p1[j] = q1[j];
      __m256 ds = one;
      if (SMOOTH) ds = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(6.0f), f), _mm256_sub_ps(one, f));
      dsdx[j] = _mm256_mul_ps(ds, _mm256_set1_ps(lv.scale_f));
    }
  }
  const __m256i mask = _mm256_set1_epi32(static_cast<int32_t>(lv.mask));
  const __m256i size = _mm256_set1_epi32(static_cast<int32_t>(lv.size));
  const __m256i off = _mm256_set1_epi32(static_cast<int32_t>(lv.offset));
  for (int c = 0; c < C; ++c) {
    __m256i idx = (c & 1) ? t1[0] : t0[0];
    __m256 wc = (c & 1) ? q1[0] : q0[0];
    for (int j = 1; j < D; ++j) {
      const bool hi = (c >> j) & 1;
      idx = lv.hashed ? _mm256_xor_si256(idx, hi ? t1[j] : t0[j]) : _mm256_add_epi32(idx, hi ? t1[j] : t0[j]);
      wc = _mm256_mul_ps(wc, hi ? q1[j] : q0[j]);
    }
    if (lv.hashed) idx = _mm256_and_si256(idx, mask);
    else idx = _mm256_min_epu32(idx, _mm256_sub_epi32(idx, size));  // idx >= size ? idx - size : idx
    _mm256_store_si256(reinterpret_cast<__m256i*>(row[c]), _mm256_add_epi32(idx, off));
    _mm256_store_ps(w[c], wc);
  }
}

// 2-D dense levels with F = 2 (every level of the image fields): corners (cx, cy) and (cx + 1, cy)
// are adjacent rows, as are (cx, cy + 1) and (cx + 1, cy + 1), so each pair is one 16-byte access
// instead of two 8-byte ones. Fills each pair's first row (r0: cy, r2: cy + 1) and the four corner
// weights (the same products as corners8); returns false, filling nothing reliable, when a lane's
// pair wraps past the level's last row (then the per-corner path runs for this block and level).
template <bool SMOOTH>
INR_AVX2 inline bool pairs2d(const Block8<2>& b, const Level& lv, int32_t* r0, int32_t* r2, __m256* w) {
  const __m256 sc = _mm256_set1_ps(lv.scale_f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  __m256 q0[2], q1[2];
  __m256i ci[2];
  for (int j = 0; j < 2; ++j) {
    const __m256 pos = position8(_mm256_load_ps(b.xs[j]), sc, half);
    ci[j] = _mm256_cvttps_epi32(pos);  // pos >= 0.5: truncation is floor
    const __m256 f = _mm256_sub_ps(pos, _mm256_cvtepi32_ps(ci[j]));
    __m256 s = f;
    if (SMOOTH) s = _mm256_mul_ps(_mm256_mul_ps(f, f), _mm256_sub_ps(_mm256_set1_ps(3.0f), _mm256_add_ps(f, f)));
    q0[j] = _mm256_sub_ps(one, s);
    q1[j] = s;
  }
  const __m256i res = _mm256_set1_epi32(static_cast<int32_t>(lv.res));
  const __m256i size = _mm256_set1_epi32(static_cast<int32_t>(lv.size));
  const __m256i last = _mm256_set1_epi32(static_cast<int32_t>(lv.size - 1));
  __m256i a = _mm256_add_epi32(ci[0], _mm256_mullo_epi32(ci[1], res));
  __m256i c = _mm256_add_epi32(a, res);
  a = _mm256_min_epu32(a, _mm256_sub_epi32(a, size));  // idx >= size ? idx - size : idx
  c = _mm256_min_epu32(c, _mm256_sub_epi32(c, size));
  const __m256i wraps = _mm256_or_si256(_mm256_cmpeq_epi32(a, last), _mm256_cmpeq_epi32(c, last));
  if (!_mm256_testz_si256(wraps, wraps)) return false;
  const __m256i off = _mm256_set1_epi32(static_cast<int32_t>(lv.offset));
  _mm256_store_si256(reinterpret_cast<__m256i*>(r0), _mm256_add_epi32(a, off));
  _mm256_store_si256(reinterpret_cast<__m256i*>(r2), _mm256_add_epi32(c, off));
  w[0] = _mm256_mul_ps(q0[0], q0[1]);
  w[1] = _mm256_mul_ps(q1[0], q0[1]);
  w[2] = _mm256_mul_ps(q0[0], q1[1]);
  w[3] = _mm256_mul_ps(q1[0], q1[1]);
  return true;
}

// The row pairs starting at r[0..7] of a [R, 2] table, transposed: (first row f0, first row f1,
// second row f0, second row f1), each with lane p = point p.
// (Helpers are functions, not lambdas: a lambda does not inherit the AVX2 target attribute.)
INR_AVX2 inline __m256 two_pairs(const float* table, const int32_t* r, int p) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(table + 2 * static_cast<int64_t>(r[p]))),
                              _mm_loadu_ps(table + 2 * static_cast<int64_t>(r[p + 4])), 1);
}

INR_AVX2 inline void load_pairs(const float* table, const int32_t* r, __m256* v) {
  const __m256 A = two_pairs(table, r, 0), B = two_pairs(table, r, 1);
  const __m256 C = two_pairs(table, r, 2), D = two_pairs(table, r, 3);
  const __m256 t0 = _mm256_unpacklo_ps(A, B), t1 = _mm256_unpackhi_ps(A, B);
  const __m256 t2 = _mm256_unpacklo_ps(C, D), t3 = _mm256_unpackhi_ps(C, D);
  v[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  v[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  v[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  v[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// Forward of one 2-D dense level for 8 points by row pairs; false: the caller's per-corner path.
// Sums the corners in the same order (0..3, fma) as that path, so results are bitwise the same.
template <bool SMOOTH>
INR_AVX2 inline bool forward_pairs2d(const Block8<2>& b, const Level& lv, const float* table, float* out, int64_t LF,
                                     int l) {
  alignas(32) int32_t r0[8], r2[8];
  __m256 w[4];
  if (!pairs2d<SMOOTH>(b, lv, r0, r2, w)) return false;
  __m256 lo[4], hi[4];
  load_pairs(table, r0, lo);
  load_pairs(table, r2, hi);
  __m256 o0 = _mm256_mul_ps(w[0], lo[0]), o1 = _mm256_mul_ps(w[0], lo[1]);
  o0 = _mm256_fmadd_ps(w[1], lo[2], o0);
  o1 = _mm256_fmadd_ps(w[1], lo[3], o1);
  o0 = _mm256_fmadd_ps(w[2], hi[0], o0);
  o1 = _mm256_fmadd_ps(w[2], hi[1], o1);
  o0 = _mm256_fmadd_ps(w[3], hi[2], o0);
  o1 = _mm256_fmadd_ps(w[3], hi[3], o1);
  // (f0, f1) per point: points 0 1 | 4 5 and 2 3 | 6 7; lanes past b.count repeat the last point
  const __m256 e = _mm256_unpacklo_ps(o0, o1), f = _mm256_unpackhi_ps(o0, o1);
  const __m128 e0 = _mm256_castps256_ps128(e), e1 = _mm256_extractf128_ps(e, 1);
  const __m128 f0 = _mm256_castps256_ps128(f), f1 = _mm256_extractf128_ps(f, 1);
  auto dst = [&](int p) { return reinterpret_cast<__m64*>(out + b.idx[p] * LF + l * 2); };
  _mm_storel_pi(dst(0), e0);
  _mm_storeh_pi(dst(1), e0);
  _mm_storel_pi(dst(2), f0);
  _mm_storeh_pi(dst(3), f0);
  _mm_storel_pi(dst(4), e1);
  _mm_storeh_pi(dst(5), e1);
  _mm_storel_pi(dst(6), f1);
  _mm_storeh_pi(dst(7), f1);
  return true;
}

// (x_p x_p y_p y_p) for each point p of two 8-lane vectors, as dst[8][4].
INR_AVX2 inline void spread_pairs(__m256 x, __m256 y, float (*dst)[4]) {
  const __m256 xl = _mm256_unpacklo_ps(x, x), yl = _mm256_unpacklo_ps(y, y);  // points 0 1 | 4 5
  const __m256 xh = _mm256_unpackhi_ps(x, x), yh = _mm256_unpackhi_ps(y, y);  // points 2 3 | 6 7
  const __m256 p04 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(xl), _mm256_castps_pd(yl)));
  const __m256 p15 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(xl), _mm256_castps_pd(yl)));
  const __m256 p26 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(xh), _mm256_castps_pd(yh)));
  const __m256 p37 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(xh), _mm256_castps_pd(yh)));
  _mm_store_ps(dst[0], _mm256_castps256_ps128(p04));
  _mm_store_ps(dst[4], _mm256_extractf128_ps(p04, 1));
  _mm_store_ps(dst[1], _mm256_castps256_ps128(p15));
  _mm_store_ps(dst[5], _mm256_extractf128_ps(p15, 1));
  _mm_store_ps(dst[2], _mm256_castps256_ps128(p26));
  _mm_store_ps(dst[6], _mm256_extractf128_ps(p26, 1));
  _mm_store_ps(dst[3], _mm256_castps256_ps128(p37));
  _mm_store_ps(dst[7], _mm256_extractf128_ps(p37, 1));
}

// Table gradient of one 2-D dense level for the block's points, in point order, by row pairs:
// each pair gets (w_a g0, w_a g1, w_b g0, w_b g1) added with one fma, the same per-element
// arithmetic as the per-corner path. False: the caller's per-corner path.
template <bool SMOOTH>
INR_AVX2 inline bool table_grad_pairs2d(const Block8<2>& b, const Level& lv, const float* gout, float* gtable,
                                        int64_t LF, int l) {
  alignas(32) int32_t r0[8], r2[8];
  __m256 w[4];
  if (!pairs2d<SMOOTH>(b, lv, r0, r2, w)) return false;
  // per point p: (w0 w0 w1 w1) and (w2 w2 w3 w3), as [8][4] arrays
  alignas(32) float wa[8][4], wb[8][4];
  spread_pairs(w[0], w[1], wa);
  spread_pairs(w[2], w[3], wb);
  for (int p = 0; p < b.count; ++p) {
    const __m128 g = _mm_castpd_ps(_mm_loaddup_pd(reinterpret_cast<const double*>(gout + b.idx[p] * LF + l * 2)));
    float* d0 = gtable + 2 * static_cast<int64_t>(r0[p]);
    float* d2 = gtable + 2 * static_cast<int64_t>(r2[p]);
    _mm_storeu_ps(d0, _mm_fmadd_ps(_mm_load_ps(wa[p]), g, _mm_loadu_ps(d0)));
    _mm_storeu_ps(d2, _mm_fmadd_ps(_mm_load_ps(wb[p]), g, _mm_loadu_ps(d2)));
  }
  return true;
}

template <int D, int F, bool SMOOTH>
INR_AVX2 void forward_simd_range(const float* x, const float* table, float* out, int64_t n, const Level* lvp, int L,
                                 const int32_t* perm, int64_t b0, int64_t b1) {
  constexpr int C = 1 << D;
  const int64_t LF = static_cast<int64_t>(L) * F;
  Block8<D> tile[kTileBlocks];
  alignas(32) int32_t row[C][8];
  alignas(32) float w[C][8];
  for (int64_t t0 = b0; t0 < b1; t0 += kTileBlocks) {
    const int64_t t1 = std::min(b1, t0 + kTileBlocks);
    for (int64_t blk = t0; blk < t1; ++blk) load_block<D>(tile[blk - t0], x, blk * 8, n, perm);
    for (int l = 0; l < L; ++l)
    for (int64_t blk = t0; blk < t1; ++blk) {
      const Block8<D>& b = tile[blk - t0];
      if constexpr (D == 2 && F == 2) {
        if (!lvp[l].hashed && forward_pairs2d<SMOOTH>(b, lvp[l], table, out, LF, l)) continue;
      }
      corners8<D, SMOOTH, false>(b, lvp[l], row, w, nullptr, nullptr, nullptr);
      if (F == 2) {
        // rows as 8-byte elements: weights duplicated over each pair
        const double* t2 = reinterpret_cast<const double*>(table);
        const __m256i dup_lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
        const __m256i dup_hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
        __m256 a_lo = _mm256_setzero_ps(), a_hi = _mm256_setzero_ps();
        for (int c = 0; c < C; ++c) {
          const __m256 wc = _mm256_load_ps(w[c]);
          const int32_t* r = row[c];
          // scalar 8-byte loads: as fast as vgatherdpd or faster on the AMD cores measured
          const __m256 v_lo = _mm256_castpd_ps(_mm256_setr_pd(t2[r[0]], t2[r[1]], t2[r[2]], t2[r[3]]));
          const __m256 v_hi = _mm256_castpd_ps(_mm256_setr_pd(t2[r[4]], t2[r[5]], t2[r[6]], t2[r[7]]));
          a_lo = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(wc, dup_lo), v_lo, a_lo);
          a_hi = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(wc, dup_hi), v_hi, a_hi);
        }
        alignas(32) float acc[16];
        _mm256_store_ps(acc, a_lo);
        _mm256_store_ps(acc + 8, a_hi);
        for (int p = 0; p < b.count; ++p) {
          float* o = out + b.idx[p] * LF + l * 2;
          o[0] = acc[2 * p];
          o[1] = acc[2 * p + 1];
        }
      } else if (F == 1) {
        __m256 a = _mm256_setzero_ps();
        for (int c = 0; c < C; ++c) {
          const __m256i r = _mm256_load_si256(reinterpret_cast<const __m256i*>(row[c]));
          a = _mm256_fmadd_ps(_mm256_load_ps(w[c]), _mm256_i32gather_ps(table, r, 4), a);
        }
        alignas(32) float acc[8];
        _mm256_store_ps(acc, a);
        for (int p = 0; p < b.count; ++p) out[b.idx[p] * LF + l] = acc[p];
      } else {
        for (int p = 0; p < b.count; ++p) {
          float acc[F];
          for (int f = 0; f < F; ++f) acc[f] = 0.0f;
          for (int c = 0; c < C; ++c) {
            const float wc = w[c][p];
            const float* v = table + static_cast<int64_t>(row[c][p]) * F;
            for (int f = 0; f < F; ++f) acc[f] = std::fma(wc, v[f], acc[f]);
          }
          float* o = out + b.idx[p] * LF + l * F;
          for (int f = 0; f < F; ++f) o[f] = acc[f];
        }
      }
    }
  }
}

// Table gradient for the levels grp, grp + G, ... over all points, in point order.
template <int D, int F, bool SMOOTH>
INR_AVX2 void table_grad_simd(const float* x, const float* gout, float* gtable, int64_t n, const Level* lvp, int L,
                              const int32_t* perm, int grp, int G) {
  constexpr int C = 1 << D;
  const int64_t LF = static_cast<int64_t>(L) * F;
  const int64_t nb = (n + 7) / 8;
  Block8<D> tile[kTileBlocks];
  alignas(32) int32_t row[C][8];
  alignas(32) float w[C][8];
  for (int64_t t0 = 0; t0 < nb; t0 += kTileBlocks) {
    const int64_t t1 = std::min(nb, t0 + kTileBlocks);
    for (int64_t blk = t0; blk < t1; ++blk) load_block<D>(tile[blk - t0], x, blk * 8, n, perm);
    for (int l = grp; l < L; l += G)
    for (int64_t blk = t0; blk < t1; ++blk) {
      const Block8<D>& b = tile[blk - t0];
      if constexpr (D == 2 && F == 2) {
        if (!lvp[l].hashed && table_grad_pairs2d<SMOOTH>(b, lvp[l], gout, gtable, LF, l)) continue;
      }
      corners8<D, SMOOTH, false>(b, lvp[l], row, w, nullptr, nullptr, nullptr);
      for (int p = 0; p < b.count; ++p) {
        const float* g = gout + b.idx[p] * LF + l * F;
        if (F == 2) {
          const __m128 gv = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(g)));
          for (int c = 0; c < C; ++c) {
            double* dst = reinterpret_cast<double*>(gtable + static_cast<int64_t>(row[c][p]) * 2);
            const __m128 cur = _mm_castpd_ps(_mm_load_sd(dst));
            _mm_store_sd(dst, _mm_castps_pd(_mm_fmadd_ps(_mm_set1_ps(w[c][p]), gv, cur)));
          }
        } else {
          for (int c = 0; c < C; ++c) {
            const float wc = w[c][p];
            float* dst = gtable + static_cast<int64_t>(row[c][p]) * F;
            for (int f = 0; f < F; ++f) dst[f] = std::fma(wc, g[f], dst[f]);
          }
        }
      }
    }
  }
}

// x-gradient, parallel over points: each point sums its levels in order.
template <int D, int F, bool SMOOTH>
INR_AVX2 void x_grad_simd_range(const float* x, const float* table, const float* gout, float* gx, int64_t n,
                                const Level* lvp, int L, const int32_t* perm, int64_t b0, int64_t b1) {
  constexpr int C = 1 << D;
  const int64_t LF = static_cast<int64_t>(L) * F;
  Block8<D> b;
  alignas(32) int32_t row[C][8];
  alignas(32) float w[C][8];
  alignas(32) float dot[C][8];
  __m256 p0[D], p1[D], dsdx[D];
  for (int64_t blk = b0; blk < b1; ++blk) {
    load_block<D>(b, x, blk * 8, n, perm);
    __m256 acc[D];
    for (int j = 0; j < D; ++j) acc[j] = _mm256_setzero_ps();
    for (int l = 0; l < L; ++l) {
      corners8<D, SMOOTH, true>(b, lvp[l], row, w, p0, p1, dsdx);
      for (int p = 0; p < 8; ++p) {
        const float* g = gout + b.idx[p] * LF + l * F;
        for (int c = 0; c < C; ++c) {
          const float* v = table + static_cast<int64_t>(row[c][p]) * F;
          float a = 0.0f;
          for (int f = 0; f < F; ++f) a = std::fma(v[f], g[f], a);
          dot[c][p] = a;
        }
      }
      for (int j = 0; j < D; ++j) {
        __m256 s = _mm256_setzero_ps();
        for (int c = 0; c < C; ++c) {
          __m256 wj = _mm256_set1_ps(1.0f);
          for (int k = 0; k < D; ++k)
            if (k != j) wj = _mm256_mul_ps(wj, ((c >> k) & 1) ? p1[k] : p0[k]);
          const __m256 term = _mm256_mul_ps(wj, _mm256_load_ps(dot[c]));
          s = ((c >> j) & 1) ? _mm256_add_ps(s, term) : _mm256_sub_ps(s, term);
        }
        acc[j] = _mm256_fmadd_ps(s, dsdx[j], acc[j]);
      }
    }
    alignas(32) float res[D][8];
    for (int j = 0; j < D; ++j) _mm256_store_ps(res[j], acc[j]);
    for (int p = 0; p < b.count; ++p)
      for (int j = 0; j < D; ++j) gx[b.idx[p] * D + j] = res[j][p];
  }
}

template <int D, int F, bool SMOOTH>
void forward_simd(const float* x, const float* table, float* out, int64_t n, const std::vector<Level>& levels,
                  const int32_t* perm) {
  const int64_t nb = (n + 7) / 8;
  at::parallel_for(0, nb, 64, [&](int64_t b0, int64_t b1) {
    forward_simd_range<D, F, SMOOTH>(x, table, out, n, levels.data(), static_cast<int>(levels.size()), perm, b0, b1);
  });
}

template <int D, int F, bool SMOOTH>
void backward_simd(const float* x, const float* table, const float* gout, float* gtable, float* gx, int64_t n,
                   const std::vector<Level>& levels, const int32_t* perm) {
  const int L = static_cast<int>(levels.size());
  if (gtable != nullptr) {
    const int G = std::max(1, std::min(L, at::get_num_threads()));
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      for (int64_t grp = g0; grp < g1; ++grp)
        table_grad_simd<D, F, SMOOTH>(x, gout, gtable, n, levels.data(), L, perm, static_cast<int>(grp), G);
    });
  }
  if (gx != nullptr) {
    const int64_t nb = (n + 7) / 8;
    at::parallel_for(0, nb, 64, [&](int64_t b0, int64_t b1) {
      x_grad_simd_range<D, F, SMOOTH>(x, table, gout, gx, n, levels.data(), L, perm, b0, b1);
    });
  }
}

#endif  // INR_HAVE_AVX2_PATH

template <template <int, int, bool> class Fn, typename... Args>
void dispatch(int d, int64_t nf, bool smooth, Args&&... args) {
#define INR_CASE(DD, FF)                                                  \
  if (d == DD && nf == FF) {                                              \
    if (smooth) Fn<DD, FF, true>::run(args...);                           \
    else Fn<DD, FF, false>::run(args...);                                 \
    return;                                                               \
  }
  INR_CASE(2, 1) INR_CASE(2, 2) INR_CASE(2, 4) INR_CASE(2, 8)
  INR_CASE(3, 1) INR_CASE(3, 2) INR_CASE(3, 4) INR_CASE(3, 8)
#undef INR_CASE
  TORCH_CHECK(false, "hashgrid_cpu: unsupported d=", d, " F=", nf, " (d in 2, 3; F in 1, 2, 4, 8)");
}

template <int D, int F, bool S>
struct Fwd {
  template <typename... A> static void run(A&&... a) { forward_impl<D, F, S>(a...); }
};
template <int D, int F, bool S>
struct Bwd {
  template <typename... A> static void run(A&&... a) { backward_impl<D, F, S>(a...); }
};
template <int D, int F, bool S>
struct Bwd2 {
  template <typename... A> static void run(A&&... a) { backward2_impl<D, F, S>(a...); }
};
#if INR_HAVE_AVX2_PATH
template <int D, int F, bool S>
struct FwdSimd {
  template <typename... A> static void run(A&&... a) { forward_simd<D, F, S>(a...); }
};
template <int D, int F, bool S>
struct BwdSimd {
  template <typename... A> static void run(A&&... a) { backward_simd<D, F, S>(a...); }
};
#endif

torch::Tensor hashgrid_order(torch::Tensor x);
const int32_t* perm_ptr(const torch::Tensor& perm, int64_t n);

void check_inputs(const torch::Tensor& x, const torch::Tensor& table, const torch::Tensor& scales,
                  const torch::Tensor& meta) {
  TORCH_CHECK(x.device().is_cpu() && table.device().is_cpu(), "hashgrid_cpu: CPU tensors only");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && table.scalar_type() == torch::kFloat32,
              "hashgrid_cpu: float32 x and table only");
  TORCH_CHECK(x.dim() == 2 && table.dim() == 2, "hashgrid_cpu: x [N, d] and table [R, F]");
  TORCH_CHECK(x.is_contiguous() && table.is_contiguous(), "hashgrid_cpu: contiguous inputs only");
  TORCH_CHECK(scales.scalar_type() == torch::kFloat64 && scales.dim() == 1, "hashgrid_cpu: scales float64 [L]");
  TORCH_CHECK(meta.scalar_type() == torch::kInt64 && meta.dim() == 2 && meta.size(1) == 4 &&
              meta.size(0) == scales.size(0), "hashgrid_cpu: meta int64 [L, 4]");
  auto m = meta.accessor<int64_t, 2>();
  for (int64_t l = 0; l < meta.size(0); ++l)
    TORCH_CHECK(m[l][2] >= 0 && m[l][2] + m[l][1] <= table.size(0), "hashgrid_cpu: level rows outside the table");
}

torch::Tensor hashgrid_forward(torch::Tensor x, torch::Tensor table, torch::Tensor scales, torch::Tensor meta,
                               bool smooth, torch::Tensor perm) {
  check_inputs(x, table, scales, meta);
  auto levels = make_levels(scales, meta);
  const int64_t n = x.size(0), nf = table.size(1);
  auto out = inr_pool::empty({n, static_cast<int64_t>(levels.size()) * nf}, x.options());
  if (n == 0) return out;
#if INR_HAVE_AVX2_PATH
  if (simd_ready(levels, static_cast<int>(x.size(1)))) {
    dispatch<FwdSimd>(static_cast<int>(x.size(1)), nf, smooth, x.data_ptr<float>(), table.data_ptr<float>(),
                      out.data_ptr<float>(), n, levels, perm_ptr(perm, n));
    return out;
  }
#endif
  dispatch<Fwd>(static_cast<int>(x.size(1)), nf, smooth, x.data_ptr<float>(), table.data_ptr<float>(),
                out.data_ptr<float>(), n, levels, perm_ptr(perm, n));
  return out;
}

std::vector<torch::Tensor> hashgrid_backward(torch::Tensor x, torch::Tensor table, torch::Tensor grad_out,
                                             torch::Tensor scales, torch::Tensor meta, bool smooth,
                                             bool need_table, bool need_x, torch::Tensor perm) {
  check_inputs(x, table, scales, meta);
  auto levels = make_levels(scales, meta);
  const int64_t n = x.size(0), nf = table.size(1);
  grad_out = grad_out.to(torch::kFloat32).contiguous();
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == n &&
              grad_out.size(1) == static_cast<int64_t>(levels.size()) * nf, "hashgrid_cpu: grad_out [N, L*F]");
  torch::Tensor gt, gx;
  if (need_table) gt = inr_pool::zeros(table.sizes(), table.options());
  if (need_x) gx = inr_pool::zeros(x.sizes(), x.options());
  if (n > 0 && (need_table || need_x)) {
#if INR_HAVE_AVX2_PATH
    if (simd_ready(levels, static_cast<int>(x.size(1)))) {
      dispatch<BwdSimd>(static_cast<int>(x.size(1)), nf, smooth, x.data_ptr<float>(), table.data_ptr<float>(),
                        grad_out.data_ptr<float>(), need_table ? gt.data_ptr<float>() : nullptr,
                        need_x ? gx.data_ptr<float>() : nullptr, n, levels, perm_ptr(perm, n));
      return {gt, gx};
    }
#endif
    dispatch<Bwd>(static_cast<int>(x.size(1)), nf, smooth, x.data_ptr<float>(), table.data_ptr<float>(),
                  grad_out.data_ptr<float>(), need_table ? gt.data_ptr<float>() : nullptr,
                  need_x ? gx.data_ptr<float>() : nullptr, n, levels, perm_ptr(perm, n));
  }
  return {gt, gx};
}

// Returns (d_dout, dtable, dx), each undefined unless asked for. ggx [N, d] and ggtable [R, F]
// may be empty (no upstream gradient).
std::vector<torch::Tensor> hashgrid_backward_backward(torch::Tensor x, torch::Tensor table, torch::Tensor dout,
                                                      torch::Tensor ggx, torch::Tensor ggtable, torch::Tensor scales,
                                                      torch::Tensor meta, bool smooth, bool need_dout,
                                                      bool need_table, bool need_x) {
  check_inputs(x, table, scales, meta);
  auto levels = make_levels(scales, meta);
  const int64_t n = x.size(0), d = x.size(1), nf = table.size(1);
  dout = dout.to(torch::kFloat32).contiguous();
  TORCH_CHECK(dout.dim() == 2 && dout.size(0) == n && dout.size(1) == static_cast<int64_t>(levels.size()) * nf,
              "hashgrid_cpu: dout [N, L*F]");
  const bool has_ggx = ggx.defined() && ggx.numel() > 0, has_ggt = ggtable.defined() && ggtable.numel() > 0;
  if (has_ggx) {
    ggx = ggx.to(torch::kFloat32).contiguous();
    TORCH_CHECK(ggx.sizes() == x.sizes(), "hashgrid_cpu: ggx must be shaped like x");
  }
  if (has_ggt) {
    ggtable = ggtable.to(torch::kFloat32).contiguous();
    TORCH_CHECK(ggtable.sizes() == table.sizes(), "hashgrid_cpu: ggtable must be shaped like the table");
  }
  torch::Tensor d_dout, dtable, dx;
  if (need_dout) d_dout = torch::empty(dout.sizes(), x.options());
  if (need_table) dtable = torch::zeros(table.sizes(), table.options());
  if (need_x) dx = torch::empty(x.sizes(), x.options());
  if (n > 0 && (has_ggx || has_ggt))
    dispatch<Bwd2>(static_cast<int>(d), nf, smooth, x.data_ptr<float>(), table.data_ptr<float>(),
                   dout.data_ptr<float>(), has_ggx ? ggx.data_ptr<float>() : nullptr,
                   has_ggt ? ggtable.data_ptr<float>() : nullptr, need_dout ? d_dout.data_ptr<float>() : nullptr,
                   need_table && has_ggx ? dtable.data_ptr<float>() : nullptr,
                   need_x ? dx.data_ptr<float>() : nullptr, n, levels);
  else {  // no upstream gradient: all zero
    if (need_dout) d_dout.zero_();
    if (need_x) dx.zero_();
  }
  return {d_dout, dtable, dx};
}

inline uint32_t spread2(uint32_t v) {  // 16 bits -> the even bits of 32
  v &= 0xFFFFu;
  v = (v | (v << 8)) & 0x00FF00FFu;
  v = (v | (v << 4)) & 0x0F0F0F0Fu;
  v = (v | (v << 2)) & 0x33333333u;
  return (v | (v << 1)) & 0x55555555u;
}

inline uint32_t spread3(uint32_t v) {  // 10 bits -> every third bit of 30
  v &= 0x3FFu;
  v = (v | (v << 16)) & 0x030000FFu;
  v = (v | (v << 8)) & 0x0300F00Fu;
  v = (v | (v << 4)) & 0x030C30C3u;
  return (v | (v << 2)) & 0x09249249u;
}

// A permutation of the points in Z-order (2-D: 16 bits per axis, 3-D: 10), by a stable two-pass
// radix sort (deterministic). Processed in this order, consecutive points touch the same or
// nearby table rows, so the gathers and scatters mostly hit L1/L2.
torch::Tensor hashgrid_order(torch::Tensor x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 2 && x.is_contiguous() &&
              (x.size(1) == 2 || x.size(1) == 3), "hashgrid_order: contiguous float32 CPU x [N, 2 or 3]");
  const int64_t n = x.size(0);
  TORCH_CHECK(n < (int64_t{1} << 31), "hashgrid_order: at most 2^31 - 1 points");
  const int d = static_cast<int>(x.size(1));
  const float* xp = x.data_ptr<float>();
  std::vector<uint32_t> code(n), code2(n);
  auto perm = torch::empty({n}, x.options().dtype(torch::kInt32));
  std::vector<int32_t> tmp(n);
  int32_t* out = perm.data_ptr<int32_t>();
  const float qmax = d == 2 ? 65535.0f : 1023.0f;
  at::parallel_for(0, n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      uint32_t c = 0;
      for (int j = 0; j < d; ++j) {
        float v = std::min(std::max(xp[i * d + j], 0.0f), 1.0f) * qmax;
        const uint32_t q = static_cast<uint32_t>(v);
        c |= (d == 2 ? spread2(q) : spread3(q)) << j;
      }
      code[i] = c;
    }
  });
  std::vector<int64_t> count(65537);
  // pass 1: low 16 bits, identity -> tmp
  for (int64_t i = 0; i < n; ++i) ++count[(code[i] & 0xFFFFu) + 1];
  for (int b = 0; b < 65536; ++b) count[b + 1] += count[b];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = count[code[i] & 0xFFFFu]++;
    tmp[at] = static_cast<int32_t>(i);
    code2[at] = code[i];
  }
  // pass 2: high 16 bits, tmp -> out
  std::fill(count.begin(), count.end(), 0);
  for (int64_t i = 0; i < n; ++i) ++count[(code2[i] >> 16) + 1];
  for (int b = 0; b < 65536; ++b) count[b + 1] += count[b];
  for (int64_t i = 0; i < n; ++i) out[count[code2[i] >> 16]++] = tmp[i];
  return perm;
}

const int32_t* perm_ptr(const torch::Tensor& perm, int64_t n) {
  if (!perm.defined() || perm.numel() == 0) return nullptr;
  TORCH_CHECK(perm.scalar_type() == torch::kInt32 && perm.dim() == 1 && perm.size(0) == n && perm.is_contiguous(),
              "hashgrid_cpu: perm must be int32 [N]");
  return perm.data_ptr<int32_t>();
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("hashgrid_forward", &hashgrid_forward, "hash-grid encoding forward (CPU)");
  m.def("hashgrid_order", &hashgrid_order, "Z-order permutation of the points (int32)");
  m.def("hashgrid_backward", &hashgrid_backward, "hash-grid encoding backward to the table and x (CPU)");
  m.def("hashgrid_backward_backward", &hashgrid_backward_backward,
        "backward of the hash-grid backward: (d dout, d table, d x) (CPU)");
  m.def("clear_pool", &inr_pool::clear, "free the cached output buffers");
  m.def("set_simd", [](int mode) { g_simd.store(mode); }, "AVX2 path: -1 auto, 0 never, 1 where possible");
  m.def("simd_available", &cpu_has_avx2, "whether this CPU can run the AVX2/FMA path");
}
