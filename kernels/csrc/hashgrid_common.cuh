// Device helpers shared by the hash-grid kernels: level geometry, cell lookup, corner indices,
// row loads/atomics, and the launch shape (one thread per (point, level)).
//
// Launch shape: block (L, P) with threadIdx.x = level and threadIdx.y = point, so consecutive
// threads are consecutive (point, level) pairs and the [points, L*F] output is written coalesced.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "hashgrid.h"
#include "launch.cuh"

namespace inr_hg {

constexpr int kMaxThreads = 256;

// Points per block for L levels: as many as fit in kMaxThreads threads.
inline int points_per_block(int n_levels) { return n_levels >= kMaxThreads ? 1 : kMaxThreads / n_levels; }

__device__ __forceinline__ uint32_t prime(int j) {
  // tcnn's coherent prime hash: the first axis is not scaled (spatial coherence in x)
  return j == 0 ? 1u : j == 1 ? 2654435761u : j == 2 ? 805459861u : 3674653429u;
}

// One point at one level: cell corner, interpolation weight s of the upper corner per axis and
// its derivatives w.r.t. x (the level scale included).
template <int D>
struct Cell {
  uint32_t cell[D];
  float s[D];
  float ds[D];   // d s / d x
  float d2s[D];  // d^2 s / d x^2 (0 for linear)
};

template <int D>
__device__ __forceinline__ void locate(const float* __restrict__ xp, const InrHashgridLevel& lv, bool smooth,
                                       Cell<D>& c) {
#pragma unroll
  for (int j = 0; j < D; ++j) {
    const float pos = fmaf(lv.scale, xp[j], 0.5f);
    const float fl = floorf(pos);
    c.cell[j] = (uint32_t)(int)fl;  // tcnn: negative cells wrap as uint32
    const float f = pos - fl;
    if (smooth) {
      c.s[j] = f * f * (3.0f - 2.0f * f);
      c.ds[j] = 6.0f * f * (1.0f - f) * lv.scale;
      c.d2s[j] = (6.0f - 12.0f * f) * lv.scale * lv.scale;
    } else {
      c.s[j] = f;
      c.ds[j] = lv.scale;
      c.d2s[j] = 0.0f;
    }
  }
}

// Row of `corner` (bit j = upper along axis j) within its level.
template <int D>
__device__ __forceinline__ uint32_t corner_row(const Cell<D>& c, const InrHashgridLevel& lv, int corner) {
  if (lv.hashed) {
    uint32_t h = 0;
#pragma unroll
    for (int j = 0; j < D; ++j) h ^= (c.cell[j] + ((corner >> j) & 1)) * prime(j);
    return h & (lv.size - 1);  // hashed levels have 2^T rows
  }
  uint32_t idx = 0, stride = 1;
#pragma unroll
  for (int j = 0; j < D; ++j) {
    idx += (c.cell[j] + ((corner >> j) & 1)) * stride;
    stride *= lv.res;
  }
  return idx < lv.size ? idx : idx % lv.size;  // wraps only at the top edges (or outside [0, 1])
}

// Per-axis weight of `corner`: s (upper) or 1 - s (lower), and its derivative sign.
template <int D>
__device__ __forceinline__ float axis_weight(const Cell<D>& c, int corner, int j) {
  return ((corner >> j) & 1) ? c.s[j] : 1.0f - c.s[j];
}
__device__ __forceinline__ float axis_sign(int corner, int j) { return ((corner >> j) & 1) ? 1.0f : -1.0f; }

// Product of the per-axis weights except axes a and b (pass -1 to exclude fewer).
template <int D>
__device__ __forceinline__ float weight_except(const Cell<D>& c, int corner, int a, int b) {
  float w = 1.0f;
#pragma unroll
  for (int k = 0; k < D; ++k)
    if (k != a && k != b) w *= axis_weight(c, corner, k);
  return w;
}

// F floats of one row, as the widest aligned vectors.
template <int F>
__device__ __forceinline__ void load_row(const float* __restrict__ p, float (&v)[F]) {
  if constexpr (F == 1) {
    v[0] = __ldg(p);
  } else if constexpr (F == 2) {
    const float2 a = __ldg(reinterpret_cast<const float2*>(p));
    v[0] = a.x; v[1] = a.y;
  } else {
#pragma unroll
    for (int q = 0; q < F / 4; ++q) {
      const float4 a = __ldg(reinterpret_cast<const float4*>(p) + q);
      v[4 * q] = a.x; v[4 * q + 1] = a.y; v[4 * q + 2] = a.z; v[4 * q + 3] = a.w;
    }
  }
}

template <int F>
__device__ __forceinline__ void store_row(float* __restrict__ p, const float (&v)[F]) {
  if constexpr (F == 1) {
    *p = v[0];
  } else if constexpr (F == 2) {
    *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
  } else {
#pragma unroll
    for (int q = 0; q < F / 4; ++q)
      reinterpret_cast<float4*>(p)[q] = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
  }
}

// p[f] += v[f]; one vector atomic per row where the hardware has them (sm_90: float2/float4).
template <int F>
__device__ __forceinline__ void atomic_add_row(float* p, const float (&v)[F]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr bool kVector = F >= 2;
#else
  constexpr bool kVector = false;
#endif
  if constexpr (kVector && F == 2) {
    atomicAdd(reinterpret_cast<float2*>(p), make_float2(v[0], v[1]));
  } else if constexpr (kVector) {
#pragma unroll
    for (int q = 0; q < F / 4; ++q)
      atomicAdd(reinterpret_cast<float4*>(p) + q, make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]));
  } else {
#pragma unroll
    for (int f = 0; f < F; ++f) atomicAdd(p + f, v[f]);
  }
}

// The block's level table in shared memory (every thread reads its own level from there, since
// divergent indexing into kernel parameters would serialize in the constant cache).
__device__ __forceinline__ void stage_levels(const InrHashgridGeom& g, InrHashgridLevel* lvs) {
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  if (tid < g.n_levels) lvs[tid] = g.levels[tid];
  __syncthreads();
}

// Point p's instance and its x row.
template <int D>
__device__ __forceinline__ const float* point_x(const InrHashgridGeom& g, const float* x, int64_t p,
                                                int64_t& inst) {
  inst = g.n_inst > 1 ? p / g.n_per : 0;
  return x + inst * g.x_stride + (p - inst * g.n_per) * D;
}

// A thread's (point, level) in a block laid out as (levels, points), as every hash-grid kernel
// reads it: the point p and whether it exists, the level l and its geometry, and for an existing
// point its x row and the table offset of its level's first row (for the point's instance).
template <int D>
struct PointLevel {
  int64_t p;
  bool valid;
  int l;
  InrHashgridLevel lv;
  const float* xp;  // nullptr when !valid
  int64_t row0;     // in floats
};

// Call after stage_levels.
template <int D, int F>
__device__ __forceinline__ PointLevel<D> point_level(const InrHashgridGeom& g, const InrHashgridLevel* lvs,
                                                     const float* x) {
  PointLevel<D> pl;
  pl.p = (int64_t)blockIdx.x * blockDim.y + threadIdx.y;
  pl.valid = pl.p < g.n_inst * g.n_per;
  pl.l = threadIdx.x;
  pl.lv = lvs[pl.l];
  pl.xp = nullptr;
  pl.row0 = 0;
  if (pl.valid) {
    int64_t inst;
    pl.xp = point_x<D>(g, x, pl.p, inst);
    pl.row0 = inst * g.table_stride + pl.lv.offset * F;
  }
  return pl;
}

// Sums per-level partials red[(ty * L + l) * D + j] over the levels of each point into dx[p, j].
// Called by every thread of the block (it synchronizes).
template <int D>
__device__ __forceinline__ void reduce_levels(float* red, const float (&part)[D], bool valid, int64_t p, float* dx) {
  const int L = blockDim.x, l = threadIdx.x, base = threadIdx.y * L;
#pragma unroll
  for (int j = 0; j < D; ++j) red[(base + l) * D + j] = part[j];
  __syncthreads();
  if (!valid) return;
  for (int j = l; j < D; j += L) {
    float s = 0.0f;
    for (int k = 0; k < L; ++k) s += red[(base + k) * D + j];
    dx[p * D + j] = s;
  }
}

inline bool geometry_ok(const InrHashgridGeom* g) {
  if (!g || g->n_dims < 1 || g->n_dims > INR_HG_MAX_DIMS || g->n_levels < 1 || g->n_levels > INR_HG_MAX_LEVELS ||
      g->n_inst < 1 || g->n_per < 1 || (g->interpolation != INR_HG_LINEAR && g->interpolation != INR_HG_SMOOTHSTEP))
    return false;
  if (g->n_feat != 1 && g->n_feat != 2 && g->n_feat != 4 && g->n_feat != 8) return false;
  for (int l = 0; l < g->n_levels; ++l) {
    const InrHashgridLevel& lv = g->levels[l];
    if (lv.size == 0 || lv.offset < 0 || (lv.hashed && (lv.size & (lv.size - 1)))) return false;
  }
  return true;
}

// Grid of blocks for all points; 0 when too many.
inline unsigned n_blocks(const InrHashgridGeom* g) {
  const int64_t points = g->n_inst * g->n_per;
  const int64_t per = points_per_block(g->n_levels);
  const int64_t blocks = (points + per - 1) / per;
  return blocks > 0x7fffffff ? 0u : (unsigned)blocks;
}

// Calls fn(integral_constant<D>, integral_constant<F>) for the geometry's (n_dims, n_feat).
template <typename Fn>
cudaError_t dispatch(const InrHashgridGeom* g, Fn&& fn) {
  using std::integral_constant;
#define INR_HG_CASE(D, F) \
  if (g->n_dims == D && g->n_feat == F) return fn(integral_constant<int, D>{}, integral_constant<int, F>{});
#define INR_HG_CASES(D) INR_HG_CASE(D, 1) INR_HG_CASE(D, 2) INR_HG_CASE(D, 4) INR_HG_CASE(D, 8)
  INR_HG_CASES(1) INR_HG_CASES(2) INR_HG_CASES(3) INR_HG_CASES(4)
#undef INR_HG_CASES
#undef INR_HG_CASE
  return cudaErrorInvalidValue;
}

}  // namespace inr_hg
