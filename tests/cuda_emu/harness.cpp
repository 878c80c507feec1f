// The fused MLP kernels and their launchers, built for the CPU emulation (include/cuda_runtime.h).
#include "mlp_fwd.cu"
#include "mlp_bwd.cu"
#include "mlp_jvp.cu"
#include "mlp_tc.cu"
