// The CUDA kernels and their launchers, built for the CPU emulation (include/cuda_runtime.h).
#include "mlp_fwd.cu"
#include "mlp_bwd.cu"
#include "mlp_jvp.cu"
#include "mlp_tc.cu"
#include "hashgrid_fwd.cu"
#include "hashgrid_bwd.cu"
#include "hashgrid_bwd2.cu"
