// Hash-grid backward: one thread per (point, level) scatters w * dout into its level's corner
// rows (atomics) and, when asked, forms its level's share of dL/dx, summed over the levels of
// each point in shared memory (a fixed order: dx is deterministic, dtable is not).
#include "hashgrid_common.cuh"

namespace inr_hg {

template <int D, int F>
__global__ void __launch_bounds__(kMaxThreads) backward_kernel(const InrHashgridGeom g, const float* __restrict__ x,
                                                               const float* __restrict__ table,
                                                               const float* __restrict__ dout, float* dtable,
                                                               float* __restrict__ dx) {
  __shared__ InrHashgridLevel lvs[INR_HG_MAX_LEVELS];
  __shared__ float red[kMaxThreads * D];
  stage_levels(g, lvs);
  const PointLevel<D> pl = point_level<D, F>(g, lvs, x);
  float gx[D] = {};
  if (pl.valid) {
    const InrHashgridLevel& lv = pl.lv;
    const int64_t row0 = pl.row0;
    float go[F];
    load_row<F>(dout + pl.p * (g.n_levels * F) + pl.l * F, go);
    Cell<D> c;
    locate<D>(pl.xp, lv, g.interpolation == INR_HG_SMOOTHSTEP, c);
#pragma unroll
    for (int corner = 0; corner < (1 << D); ++corner) {
      const int64_t at = row0 + (int64_t)corner_row<D>(c, lv, corner) * F;
      if (dtable) {
        const float w = weight_except<D>(c, corner, -1, -1);
        float v[F];
#pragma unroll
        for (int f = 0; f < F; ++f) v[f] = w * go[f];
        atomic_add_row<F>(dtable + at, v);
      }
      if (dx) {  // d out / d x_j = sum_c T[c] * dw_c/dx_j, dotted with dout
        float v[F];
        load_row<F>(table + at, v);
        float dot = 0.0f;
#pragma unroll
        for (int f = 0; f < F; ++f) dot = fmaf(go[f], v[f], dot);
#pragma unroll
        for (int j = 0; j < D; ++j)
          gx[j] = fmaf(dot * axis_sign(corner, j) * c.ds[j], weight_except<D>(c, corner, j, -1), gx[j]);
      }
    }
  }
  if (dx) reduce_levels<D>(red, gx, pl.valid, pl.p, dx);
}

}  // namespace inr_hg

extern "C" cudaError_t inr_hashgrid_backward(const InrHashgridGeom* g, const float* x, const float* table,
                                             const float* dout, float* dtable, float* dx, cudaStream_t stream) {
  using namespace inr_hg;
  if (!geometry_ok(g) || !x || !table || !dout) return cudaErrorInvalidValue;
  if (!dtable && !dx) return cudaSuccess;
  const unsigned blocks = n_blocks(g);
  if (!blocks) return cudaErrorInvalidValue;
  const dim3 block(g->n_levels, points_per_block(g->n_levels));
  return dispatch(g, [&](auto Dc, auto Fc) {
    const auto kernel = backward_kernel<decltype(Dc)::value, decltype(Fc)::value>;
    INR_LAUNCH(kernel, blocks, block, 0, stream, *g, x, table, dout, dtable, dx);
    return cudaGetLastError();
  });
}
