// Launcher of the fused MLP forward: validates the shape, picks the width instantiation.
#include "mlp_fwd.cuh"

// Padded width of a small output layer (d_out <= this); a build flag to compare tile shapes.
#ifndef INR_MLP_SMALL_OUT_PAD
#define INR_MLP_SMALL_OUT_PAD 4
#endif

extern "C" int inr_mlp_dout_pad(int d_out) { return d_out <= INR_MLP_SMALL_OUT_PAD ? INR_MLP_SMALL_OUT_PAD : 16; }

namespace inr {

template <int W, int OUTP>
static cudaError_t launch_forward(const InrMlpFwdArgs& a, cudaStream_t stream) {
  return launch_blocks(mlp_forward_kernel<W, OUTP>, a, TileRows<W>::value,
                       sizeof(float) * (size_t)fwd_smem_floats<W>(a.d_in), stream);
}

template <int W>
static cudaError_t launch_forward_w(const InrMlpFwdArgs& a, cudaStream_t stream) {
  return inr_mlp_dout_pad(a.d_out) == 16 ? launch_forward<W, 16>(a, stream)
                                          : launch_forward<W, INR_MLP_SMALL_OUT_PAD>(a, stream);
}

}  // namespace inr

extern "C" cudaError_t inr_mlp_forward(const InrMlpFwdArgs* a, cudaStream_t stream) {
  if (!a || a->B < 1 || a->N < 1 || a->d_in < 1 || a->d_in > 64 || a->d_out < 1 || a->d_out > INR_MLP_MAX_D_OUT ||
      a->n_layers < 2 || a->n_layers > INR_MLP_MAX_LAYERS || !a->x || !a->y)
    return cudaErrorInvalidValue;
  switch (a->width) {
    case 16: return inr::launch_forward_w<16>(*a, stream);
    case 32: return inr::launch_forward_w<32>(*a, stream);
    case 64: return inr::launch_forward_w<64>(*a, stream);
    case 128: return inr::launch_forward_w<128>(*a, stream);
    default: return cudaErrorInvalidValue;
  }
}
