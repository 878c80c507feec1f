// Hash-grid forward: one thread per (point, level) interpolates its level's 2^d corner rows.
#include "hashgrid_common.cuh"

namespace inr_hg {

template <int D, int F>
__global__ void __launch_bounds__(kMaxThreads) forward_kernel(const InrHashgridGeom g, const float* __restrict__ x,
                                                              const float* __restrict__ table,
                                                              float* __restrict__ out) {
  __shared__ InrHashgridLevel lvs[INR_HG_MAX_LEVELS];
  stage_levels(g, lvs);
  const PointLevel<D> pl = point_level<D, F>(g, lvs, x);
  if (!pl.valid) return;
  const InrHashgridLevel& lv = pl.lv;
  const float* tp = table + pl.row0;

  Cell<D> c;
  locate<D>(pl.xp, lv, g.interpolation == INR_HG_SMOOTHSTEP, c);
  float acc[F] = {};
#pragma unroll
  for (int corner = 0; corner < (1 << D); ++corner) {
    const float w = weight_except<D>(c, corner, -1, -1);
    float v[F];
    load_row<F>(tp + (int64_t)corner_row<D>(c, lv, corner) * F, v);
#pragma unroll
    for (int f = 0; f < F; ++f) acc[f] = fmaf(w, v[f], acc[f]);
  }
  store_row<F>(out + pl.p * (g.n_levels * F) + pl.l * F, acc);
}

}  // namespace inr_hg

extern "C" cudaError_t inr_hashgrid_forward(const InrHashgridGeom* g, const float* x, const float* table, float* out,
                                            cudaStream_t stream) {
  using namespace inr_hg;
  if (!geometry_ok(g) || !x || !table || !out) return cudaErrorInvalidValue;
  const unsigned blocks = n_blocks(g);
  if (!blocks) return cudaErrorInvalidValue;
  const dim3 block(g->n_levels, points_per_block(g->n_levels));
  return dispatch(g, [&](auto Dc, auto Fc) {
    const auto kernel = forward_kernel<decltype(Dc)::value, decltype(Fc)::value>;
    INR_LAUNCH(kernel, blocks, block, 0, stream, *g, x, table, out);
    return cudaGetLastError();
  });
}
