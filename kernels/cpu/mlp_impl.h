// Body of the fused CPU MLP (kernels/cpu/mlp.cpp), included twice by mlp.cpp: once plainly
// (portable path) and once inside `#pragma GCC target("avx2,fma")` with INR_MLP_AVX2 = 1.
// Everything here lives in the namespace the includer opens; no headers are included here.
//
// Layout: activations of a chunk are row-major [rows, padded width] (widths rounded up to 8),
// padded columns hold zeros on every layer input, so a GEMM may run over padded columns.

// C[m, n] = init + sum_k A[m * ars + k * acs] * B[k * ldb + n], for m < M, n < N (N multiple of
// 8), where init is C itself (acc), the bias row (bias != nullptr) or 0.
#if INR_MLP_AVX2
// Accumulators are named variables, not an array: GCC kept an array of __m256 on the stack and
// stored it every iteration (2.4 M samples/s forward instead of 4+).
#define INR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
template <int MR, int NV>
inline void micro(int K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb, float* C, int64_t ldc,
                  const float* bias, bool acc) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 b0 = bias ? _mm256_loadu_ps(bias) : zero;
  const __m256 b1 = (bias && NV > 1) ? _mm256_loadu_ps(bias + 8) : zero;
#define INR_DECL(r)                                                                   \
  __m256 c##r##0 = b0, c##r##1 = b1;                                                  \
  if constexpr (r < MR) {                                                             \
    if (acc) {                                                                        \
      c##r##0 = _mm256_loadu_ps(C + r * ldc);                                         \
      if constexpr (NV > 1) c##r##1 = _mm256_loadu_ps(C + r * ldc + 8);               \
    }                                                                                 \
  }
  INR_ROWS(INR_DECL)
#undef INR_DECL
  const float* a = A;
  const float* b = B;
  for (int k = 0; k < K; ++k, a += acs, b += ldb) {
    const __m256 v0 = _mm256_loadu_ps(b);
    const __m256 v1 = NV > 1 ? _mm256_loadu_ps(b + 8) : zero;
#define INR_FMA(r)                                                  \
  if constexpr (r < MR) {                                           \
    const __m256 ar = _mm256_broadcast_ss(a + r * ars);             \
    c##r##0 = _mm256_fmadd_ps(ar, v0, c##r##0);                     \
    if constexpr (NV > 1) c##r##1 = _mm256_fmadd_ps(ar, v1, c##r##1); \
  }
    INR_ROWS(INR_FMA)
#undef INR_FMA
  }
#define INR_STORE(r)                                                  \
  if constexpr (r < MR) {                                             \
    _mm256_storeu_ps(C + r * ldc, c##r##0);                           \
    if constexpr (NV > 1) _mm256_storeu_ps(C + r * ldc + 8, c##r##1); \
  }
  INR_ROWS(INR_STORE)
#undef INR_STORE
}
#undef INR_ROWS

template <int NV>
inline void micro_rows(int mr, int K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb, float* C,
                       int64_t ldc, const float* bias, bool acc) {
  switch (mr) {
    case 6: micro<6, NV>(K, A, ars, acs, B, ldb, C, ldc, bias, acc); break;
    case 5: micro<5, NV>(K, A, ars, acs, B, ldb, C, ldc, bias, acc); break;
    case 4: micro<4, NV>(K, A, ars, acs, B, ldb, C, ldc, bias, acc); break;
    case 3: micro<3, NV>(K, A, ars, acs, B, ldb, C, ldc, bias, acc); break;
    case 2: micro<2, NV>(K, A, ars, acs, B, ldb, C, ldc, bias, acc); break;
    default: micro<1, NV>(K, A, ars, acs, B, ldb, C, ldc, bias, acc); break;
  }
}

// Tiles of 6 rows x 16 columns (12 accumulators); the column panel of B (K x 16) stays in L1
// while the rows stream past it.
inline void gemm(int M, int N, int K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb, float* C,
                 int64_t ldc, const float* bias, bool acc) {
  for (int n0 = 0; n0 < N; n0 += 16) {
    const bool two = N - n0 >= 16;
    for (int m0 = 0; m0 < M; m0 += 6) {
      const int mr = std::min(6, M - m0);
      const float* a = A + m0 * ars;
      float* c = C + m0 * ldc + n0;
      const float* bb = bias ? bias + n0 : nullptr;
      if (two)
        micro_rows<2>(mr, K, a, ars, acs, B + n0, ldb, c, ldc, bb, acc);
      else
        micro_rows<1>(mr, K, a, ars, acs, B + n0, ldb, c, ldc, bb, acc);
    }
  }
}
#else
inline void gemm(int M, int N, int K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb, float* C,
                 int64_t ldc, const float* bias, bool acc) {
  for (int m = 0; m < M; ++m) {
    float* c = C + m * ldc;
    if (!acc) {
      for (int n = 0; n < N; ++n) c[n] = bias ? bias[n] : 0.0f;
    }
    for (int k = 0; k < K; ++k) {
      const float a = A[m * ars + k * acs];
      const float* b = B + k * ldb;
      for (int n = 0; n < N; ++n) c[n] += a * b[n];
    }
  }
}
#endif

// h = act(z) over a [rows, ld] block (z may alias h unless the activation needs z later: sine).
inline void activate(int act, float w0, const float* z, float* h, int64_t count) {
  switch (act) {
    case kRelu:
      for (int64_t i = 0; i < count; ++i) h[i] = z[i] > 0.0f ? z[i] : 0.0f;
      break;
    case kSine:
      for (int64_t i = 0; i < count; ++i) h[i] = std::sin(w0 * z[i]);
      break;
    case kSigmoid:
      for (int64_t i = 0; i < count; ++i) h[i] = 1.0f / (1.0f + std::exp(-z[i]));
      break;
    case kExp:
      for (int64_t i = 0; i < count; ++i) h[i] = std::exp(z[i]);
      break;
    default:
      if (h != z)
        for (int64_t i = 0; i < count; ++i) h[i] = z[i];
  }
}

// g *= act'(z) in place (h = act(z) as computed by `activate`).
inline void act_grad(int act, float w0, const float* z, const float* h, float* g, int64_t count) {
  switch (act) {
    case kRelu:
      for (int64_t i = 0; i < count; ++i) g[i] = h[i] > 0.0f ? g[i] : 0.0f;
      break;
    case kSine:
      for (int64_t i = 0; i < count; ++i) g[i] *= w0 * std::cos(w0 * z[i]);
      break;
    case kSigmoid:
      for (int64_t i = 0; i < count; ++i) g[i] *= h[i] * (1.0f - h[i]);
      break;
    case kExp:
      for (int64_t i = 0; i < count; ++i) g[i] *= h[i];
      break;
    default:
      break;
  }
}

// Forward of one chunk of `rows` points: x rows [rows, d_in] (row stride d_in) -> y [rows, d_out].
// `buf` holds 2 * chunk * max padded width floats.
inline void forward_chunk(const Net& net, const float* x, int rows, float* y, float* buf) {
  const int L = net.L;
  float* cur = buf;
  float* nxt = buf + static_cast<int64_t>(net.chunk) * net.maxp;
  const float* a = x;
  int64_t lda = net.w[0];
  for (int l = 0; l < L; ++l) {
    const int64_t op = net.wp[l + 1];
    gemm(rows, static_cast<int>(op), static_cast<int>(net.w[l]), a, lda, 1, net.WT[l].data(), op, nxt, op,
         net.has_bias ? net.bias[l].data() : nullptr, false);
    activate(net.act[l], net.w0[l], nxt, nxt, rows * op);
    a = nxt;
    lda = op;
    std::swap(cur, nxt);
  }
  const int64_t dout = net.w[L], op = net.wp[L];
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < dout; ++j) y[r * dout + j] = cur[r * op + j];
}

// Backward of one chunk: recompute its forward (keeping every layer's input h[l] and, for sine,
// the pre-activation z[l]), then back-propagate gy, adding dW (padded [out, in_p]) and db into
// this group's accumulators and writing dL/dx rows (if gx).
inline void backward_chunk(const Net& net, const float* x, const float* gy, int rows, float* gx, float* const* dW,
                           float* const* dB, bool need_w, Scratch& s) {
  const int L = net.L;
  const int64_t P = net.chunk;
  // h[0]: x padded with zeros.
  {
    const int64_t din = net.w[0], ip = net.wp[0];
    float* h0 = s.h[0];
    for (int r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < din; ++j) h0[r * ip + j] = x[r * din + j];
      for (int64_t j = din; j < ip; ++j) h0[r * ip + j] = 0.0f;
    }
  }
  const bool out_needs_fwd = net.act[L - 1] != kNone;
  const int recompute = out_needs_fwd ? L : L - 1;
  for (int l = 0; l < recompute; ++l) {
    const int64_t op = net.wp[l + 1];
    float* z = net.act[l] == kSine ? s.z[l + 1] : s.h[l + 1];
    gemm(rows, static_cast<int>(op), static_cast<int>(net.w[l]), s.h[l], net.wp[l], 1, net.WT[l].data(), op, z, op,
         net.has_bias ? net.bias[l].data() : nullptr, false);
    activate(net.act[l], net.w0[l], z, s.h[l + 1], rows * op);
  }
  // g = dL/dz of the output layer, padded.
  float* g = s.g[0];
  float* g2 = s.g[1];
  {
    const int64_t dout = net.w[L], op = net.wp[L];
    for (int r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < dout; ++j) g[r * op + j] = gy[r * dout + j];
      for (int64_t j = dout; j < op; ++j) g[r * op + j] = 0.0f;
    }
    if (out_needs_fwd) act_grad(net.act[L - 1], net.w0[L - 1], s.z[L], s.h[L], g, rows * op);
  }
  (void)P;
  for (int l = L - 1; l >= 0; --l) {
    const int64_t op = net.wp[l + 1], ip = net.wp[l];
    const int out = static_cast<int>(net.w[l + 1]);
    if (need_w) {
      // dW[o, i] += sum_r g[r, o] h[l][r, i]
      gemm(out, static_cast<int>(ip), rows, g, 1, op, s.h[l], ip, dW[l], ip, nullptr, true);
      if (net.has_bias) {
        float* db = dB[l];
        for (int r = 0; r < rows; ++r)
          for (int o = 0; o < out; ++o) db[o] += g[r * op + o];
      }
    }
    if (l == 0 && gx == nullptr) break;
    // g2 = g W  ([rows, in_p]); then through the activation of layer l - 1.
    gemm(rows, static_cast<int>(ip), out, g, op, 1, net.Wp[l].data(), ip, g2, ip, nullptr, false);
    if (l > 0) act_grad(net.act[l - 1], net.w0[l - 1], s.z[l], s.h[l], g2, rows * ip);
    std::swap(g, g2);
  }
  if (gx != nullptr) {
    const int64_t din = net.w[0], ip = net.wp[0];
    for (int r = 0; r < rows; ++r)
      for (int64_t j = 0; j < din; ++j) gx[r * din + j] = g[r * ip + j];
  }
}
