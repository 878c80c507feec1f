// Launcher of the fused MLP backward: validates the shape, picks the (width, d_in padding)
// instantiation.
#include "mlp_bwd.cuh"

extern "C" int inr_mlp_din_pad(int d_in) { return d_in <= 4 ? 4 : d_in <= 16 ? 16 : d_in <= 32 ? 32 : 64; }

namespace inr {

template <int W, int DINP>
static cudaError_t launch_backward(const InrMlpBwdArgs& a, cudaStream_t stream) {
  return launch_blocks(mlp_backward_kernel<W, DINP>, a, TileRows<W>::value,
                       sizeof(float) * (size_t)bwd_smem_floats<W, DINP>(), stream);
}

template <int W>
static cudaError_t launch_backward_w(const InrMlpBwdArgs& a, cudaStream_t stream) {
  switch (inr_mlp_din_pad(a.d_in)) {
    case 4: return launch_backward<W, 4>(a, stream);
    case 16: return launch_backward<W, 16>(a, stream);
    case 32: return launch_backward<W, 32>(a, stream);
    default: return launch_backward<W, 64>(a, stream);
  }
}

}  // namespace inr

extern "C" cudaError_t inr_mlp_backward(const InrMlpBwdArgs* a, cudaStream_t stream) {
  if (!a || a->B < 1 || a->N < 1 || a->d_in < 1 || a->d_in > 64 || a->d_out < 1 || a->d_out > INR_MLP_MAX_D_OUT ||
      a->n_layers < 2 || a->n_layers > INR_MLP_MAX_LAYERS || !a->dy || !a->y || !a->save_h ||
      (a->act == INR_ACT_SINE && !a->save_z))
    return cudaErrorInvalidValue;
  for (int l = 0; l < a->n_layers; ++l)
    if (!a->dz[l] || !a->w[l]) return cudaErrorInvalidValue;
  switch (a->width) {
    case 16: return inr::launch_backward_w<16>(*a, stream);
    case 32: return inr::launch_backward_w<32>(*a, stream);
    case 64: return inr::launch_backward_w<64>(*a, stream);
    case 128: return inr::launch_backward_w<128>(*a, stream);
    default: return cudaErrorInvalidValue;
  }
}
