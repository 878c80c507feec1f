// C interface of the hash-grid encoding kernels: raw pointers and plain structs only, so the .cu
// files build with nvcc alone (no torch headers) and bindings.cpp stays a thin layer.
//
// Semantics are tiny-cuda-nn's grid.h (and inr/encodings/hashgrid.py, its PyTorch twin): per level
//   pos = fmaf(scale, x, 0.5); cell = (uint32)(int)floor(pos); s = pos - floor(pos) (or smoothstep)
//   index = dense (x fastest, uint32) or XOR of (cell_j + bit_j) * prime_j, then % size
// and the output is the d-linear interpolation of the 2^d corner rows, level-major.
//
// Layout (float32, contiguous; "points" = n_inst * n_per, instance-major):
//   x      [n_inst?, n_per, n_dims]   x_stride floats between instances (0: one point set shared)
//   table  [n_inst?, total_rows, F]   table_stride floats between instances (0: one shared table)
//   out    [points, n_levels * F]     level-major
// Row-vector loads need table (and every [.., F] buffer) aligned to 4 * F bytes (16 for F = 8).
#pragma once
#include <cuda_runtime_api.h>
#include <stdint.h>

#define INR_HG_MAX_LEVELS 32
#define INR_HG_MAX_DIMS 4

enum { INR_HG_LINEAR = 0, INR_HG_SMOOTHSTEP = 1 };

typedef struct {
  float scale;      // float32, as tcnn computes it: base * per_level_scale^l - 1
  uint32_t res;     // ceil(scale) + 1: the dense stride per axis
  uint32_t size;    // rows of this level (a power of two when hashed)
  uint32_t hashed;  // 1: XOR hash, 0: dense index
  int64_t offset;   // first row of this level in the table
} InrHashgridLevel;

typedef struct {
  int n_dims;        // 1..INR_HG_MAX_DIMS
  int n_feat;        // F: 1, 2, 4 or 8
  int n_levels;      // 1..INR_HG_MAX_LEVELS
  int interpolation; // INR_HG_LINEAR or INR_HG_SMOOTHSTEP
  int64_t n_inst, n_per;
  int64_t x_stride;
  int64_t table_stride;
  InrHashgridLevel levels[INR_HG_MAX_LEVELS];
} InrHashgridGeom;

#ifdef __cplusplus
extern "C" {
#endif

// All return cudaSuccess or the launch error; cudaErrorInvalidValue for unsupported geometry.

// out = encode(x; table).
cudaError_t inr_hashgrid_forward(const InrHashgridGeom* g, const float* x, const float* table, float* out,
                                 cudaStream_t stream);

// Given dout [points, L*F]: dtable (same layout as table, ACCUMULATED with atomics: the caller
// zeroes it) and dx [points, n_dims] (written). Either may be null.
cudaError_t inr_hashgrid_backward(const InrHashgridGeom* g, const float* x, const float* table, const float* dout,
                                  float* dtable, float* dx, cudaStream_t stream);

// Backward of the backward. Inputs: the upstream gradients ggx of dx (layout of x, x_stride) and
// ggtable of dtable (layout of table, table_stride); either may be null (zero). Outputs, each may
// be null: d_dout [points, L*F] (written), dtable (accumulated, as above), dx [points, n_dims]
// (written; includes the second derivatives of the interpolation weights).
cudaError_t inr_hashgrid_backward_backward(const InrHashgridGeom* g, const float* x, const float* table,
                                           const float* dout, const float* ggx, const float* ggtable,
                                           float* d_dout, float* dtable, float* dx, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
