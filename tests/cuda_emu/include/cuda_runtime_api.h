// CPU emulation of the CUDA runtime types the kernels' headers name (tests only; see ../README.md).
#pragma once
#include <cstdint>

typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
