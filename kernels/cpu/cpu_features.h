// What the CPU kernels may use beyond baseline x86-64, decided at run time: the builds carry no
// -march flags (torch caches them, and they may move between machines), so AVX2/FMA code is
// compiled under target attributes and picked only where the CPU reports both.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define INR_HAVE_AVX2_PATH 1
#else
#define INR_HAVE_AVX2_PATH 0
#endif

namespace inr_cpu {

inline bool cpu_has_avx2() {
#if INR_HAVE_AVX2_PATH
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

}  // namespace inr_cpu
