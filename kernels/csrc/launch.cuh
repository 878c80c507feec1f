// Kernel launches and dynamic shared memory, in the one form that both nvcc and the CPU emulation
// the tests run the kernels in (tests/cuda_emu, built with INR_CUDA_EMU) accept.
#pragma once
#include <cuda_runtime.h>

// kernel<<<blocks, threads, bytes, stream>>>(args...). `kernel` is a plain name (a function
// pointer or a local alias): template arguments would hold commas.
#ifdef INR_CUDA_EMU
#define INR_LAUNCH(kernel, blocks, threads, bytes, stream, ...) emu::launch(kernel, blocks, threads, bytes, __VA_ARGS__)
#else
#define INR_LAUNCH(kernel, blocks, threads, bytes, stream, ...) kernel<<<blocks, threads, bytes, stream>>>(__VA_ARGS__)
#endif

// Declares the block's dynamic shared memory (`INR_DYNAMIC_SHARED float4 name[];`). The emulation
// provides it itself, and there a plain __shared__ array is a static (one block runs at a time).
#ifdef INR_CUDA_EMU
#define INR_DYNAMIC_SHARED extern
#else
#define INR_DYNAMIC_SHARED extern __shared__
#endif
