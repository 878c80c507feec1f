// Launcher of the fused MLP forward: validates the shape, picks the width instantiation.
#include "mlp_fwd.cuh"

namespace inr {

template <int W>
static cudaError_t launch_forward(const InrMlpFwdArgs& a, cudaStream_t stream) {
  constexpr int T = TileRows<W>::value;
  const size_t bytes = sizeof(float) * (size_t)fwd_smem_floats<W>(a.d_in);
  if (bytes > 48 * 1024) {  // above 48 KB a kernel must opt in to more dynamic shared memory
    cudaError_t err = cudaFuncSetAttribute(mlp_forward_kernel<W>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (err != cudaSuccess) return err;
  }
  const int64_t blocks = (int64_t)a.B * ((a.N + T - 1) / T);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  mlp_forward_kernel<W><<<(unsigned)blocks, kThreads, bytes, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace inr

extern "C" cudaError_t inr_mlp_forward(const InrMlpFwdArgs* a, cudaStream_t stream) {
  if (!a || a->B < 1 || a->N < 1 || a->d_in < 1 || a->d_in > 64 || a->d_out < 1 || a->d_out > INR_MLP_OUT_PAD ||
      a->n_layers < 2 || a->n_layers > INR_MLP_MAX_LAYERS || !a->x || !a->y)
    return cudaErrorInvalidValue;
  switch (a->width) {
    case 16: return inr::launch_forward<16>(*a, stream);
    case 32: return inr::launch_forward<32>(*a, stream);
    case 64: return inr::launch_forward<64>(*a, stream);
    case 128: return inr::launch_forward<128>(*a, stream);
    default: return cudaErrorInvalidValue;
  }
}
