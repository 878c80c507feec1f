// CPU emulation of CUDA's half type (tests only): IEEE binary16 via the compiler's _Float16.
#pragma once
struct __half {
  _Float16 v;
};
inline __half __float2half_rn(float f) { return {(_Float16)f}; }
inline float __half2float(__half h) { return (float)h.v; }
