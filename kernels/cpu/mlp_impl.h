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

#if INR_MLP_AVX2
// sin(t) and cos(t) of 8 floats. Cody-Waite reduction t = q (pi/2) + r, |r| <= pi/4, with pi/2
// split in three floats (P1 has 8 significant bits, so q P1 is exact and t - q P1 is exact for
// |q| < 2^16; the next two steps are single FMAs), then Cephes' minimax polynomials for sin and
// cos on [-pi/4, pi/4], picked and signed by the quadrant q mod 4. Measured against float64
// sin/cos of the same float32 t (tests/test_cpu_mlp.py): within 1.2e-7 absolute for |t| <= 4096,
// i.e. about an ulp of 1 (float32 torch.sin is within 6e-8). Accuracy decays past |t| ~ 1e5
// (q P1 no longer exact); NaN in gives NaN out.
inline void sincos8(__m256 t, __m256& s, __m256& c) {
  const __m256 q = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(0.636619772367581343f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(q, _mm256_set1_ps(1.5703125f), t);
  r = _mm256_fnmadd_ps(q, _mm256_set1_ps(4.837512969970703125e-4f), r);
  r = _mm256_fnmadd_ps(q, _mm256_set1_ps(7.54978995489188216e-8f), r);
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 ps = _mm256_fmadd_ps(r2, _mm256_set1_ps(-1.9515295891e-4f), _mm256_set1_ps(8.3321608736e-3f));
  ps = _mm256_fmadd_ps(ps, r2, _mm256_set1_ps(-1.6666654611e-1f));
  ps = _mm256_fmadd_ps(_mm256_mul_ps(ps, r2), r, r);
  __m256 pc = _mm256_fmadd_ps(r2, _mm256_set1_ps(2.443315711809948e-5f), _mm256_set1_ps(-1.388731625493765e-3f));
  pc = _mm256_fmadd_ps(pc, r2, _mm256_set1_ps(4.166664568298827e-2f));
  pc = _mm256_fmadd_ps(_mm256_mul_ps(pc, r2), r2, _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), r2, _mm256_set1_ps(1.0f)));
  const __m256i qi = _mm256_cvtps_epi32(q);
  const __m256 odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(qi, _mm256_set1_epi32(1)),
                                                            _mm256_set1_epi32(1)));
  const __m256 sin_sign = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(qi, _mm256_set1_epi32(2)), 30));
  const __m256 cos_sign = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_and_si256(_mm256_add_epi32(qi, _mm256_set1_epi32(1)), _mm256_set1_epi32(2)), 30));
  s = _mm256_xor_ps(_mm256_blendv_ps(ps, pc, odd), sin_sign);
  c = _mm256_xor_ps(_mm256_blendv_ps(pc, ps, odd), cos_sign);
}

// For tests: sin and cos of `n` floats (n multiple of 8 not required).
inline void sincos_array(const float* t, float* s, float* c, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 vs, vc;
    sincos8(_mm256_loadu_ps(t + i), vs, vc);
    _mm256_storeu_ps(s + i, vs);
    _mm256_storeu_ps(c + i, vc);
  }
  if (i < n) {
    float tt[8] = {0}, ss[8], cc[8];
    for (int64_t j = i; j < n; ++j) tt[j - i] = t[j];
    __m256 vs, vc;
    sincos8(_mm256_loadu_ps(tt), vs, vc);
    _mm256_storeu_ps(ss, vs);
    _mm256_storeu_ps(cc, vc);
    for (int64_t j = i; j < n; ++j) {
      s[j] = ss[j - i];
      c[j] = cc[j - i];
    }
  }
}
#endif

// h = act(z) over a [rows, ld] block (count a multiple of 8; z may alias h).
inline void activate(int act, float w0, const float* z, float* h, int64_t count) {
  switch (act) {
    case kRelu:
      for (int64_t i = 0; i < count; ++i) h[i] = z[i] > 0.0f ? z[i] : 0.0f;
      break;
    case kSine: {
#if INR_MLP_AVX2
      const __m256 w = _mm256_set1_ps(w0);
      for (int64_t i = 0; i < count; i += 8) {
        __m256 s, c;
        sincos8(_mm256_mul_ps(w, _mm256_loadu_ps(z + i)), s, c);
        _mm256_storeu_ps(h + i, s);
      }
#else
      for (int64_t i = 0; i < count; ++i) h[i] = std::sin(w0 * z[i]);
#endif
      break;
    }
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

// The backward's recompute: h = act(z) and, for sine, z is overwritten with the derivative
// w0 cos(w0 z) (one range reduction for both), which `act_grad` then multiplies in.
inline void activate_keep(int act, float w0, float* z, float* h, int64_t count) {
  if (act != kSine) {
    activate(act, w0, z, h, count);
    return;
  }
#if INR_MLP_AVX2
  const __m256 w = _mm256_set1_ps(w0);
  for (int64_t i = 0; i < count; i += 8) {
    __m256 s, c;
    sincos8(_mm256_mul_ps(w, _mm256_loadu_ps(z + i)), s, c);
    _mm256_storeu_ps(h + i, s);
    _mm256_storeu_ps(z + i, _mm256_mul_ps(w, c));
  }
#else
  for (int64_t i = 0; i < count; ++i) {
    const float t = w0 * z[i];
    h[i] = std::sin(t);
    z[i] = w0 * std::cos(t);
  }
#endif
}

// g *= act'(z) in place, where h = act(z) and, for sine, d = w0 cos(w0 z) from `activate_keep`.
inline void act_grad(int act, const float* d, const float* h, float* g, int64_t count) {
  switch (act) {
    case kRelu:
      for (int64_t i = 0; i < count; ++i) g[i] = h[i] > 0.0f ? g[i] : 0.0f;
      break;
    case kSine:
      for (int64_t i = 0; i < count; ++i) g[i] *= d[i];
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

// db[o] += sum_r g[r * ld + o] (a bias gradient from a chunk's dL/dz rows).
inline void add_column_sums(float* db, const float* g, int rows, int out, int64_t ld) {
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) db[o] += g[r * ld + o];
}

// Forward of one chunk of `rows` points: x rows [rows, d_in] (row stride d_in) -> y [rows, d_out].
// `buf` holds 2 * chunk * max padded width floats.
// `b` picks the instance's weights (0 when they are shared).
// With `save` (this chunk's region of the saved activations, see Net::save_floats), every hidden
// layer's output h (and for sine w0 cos(w0 z)) goes there instead of `buf`, for the backward:
// the same arithmetic as its recompute, so saving never changes a result.
inline void forward_chunk(const Net& net, int64_t b, const float* x, int rows, float* y, float* buf, float* save) {
  const int L = net.L;
  float* cur = buf;
  float* nxt = buf + static_cast<int64_t>(net.chunk) * net.maxp;
  const float* a = x;
  int64_t lda = net.w[0];
  for (int l = 0; l < L; ++l) {
    const int64_t op = net.wp[l + 1];
    const bool keep = save != nullptr && l < L - 1;
    float* h = keep ? save + net.hoff[l + 1] : nxt;
    float* z = keep && net.act[l] == kSine ? save + net.zoff[l + 1] : h;
    gemm(rows, static_cast<int>(op), static_cast<int>(net.w[l]), a, lda, 1, net.wt(l, b), op, z, op,
         net.has_bias ? net.b(l, b) : nullptr, false);
    if (keep)
      activate_keep(net.act[l], net.w0[l], z, h, rows * op);
    else
      activate(net.act[l], net.w0[l], z, h, rows * op);
    a = h;
    lda = op;
    if (!keep) std::swap(cur, nxt);
  }
  const int64_t dout = net.w[L], op = net.wp[L];
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < dout; ++j) y[r * dout + j] = cur[r * op + j];
}

// Backward of one chunk: recompute its forward (keeping every layer's input h[l] and, for sine,
// the derivative w0 cos(w0 z[l])), or take the hidden layers from `saved` (the forward's), then
// back-propagate gy, adding dW (padded [out, in_p]) and db into this group's accumulators and
// writing dL/dx rows (if gx).
inline void backward_chunk(const Net& net, int64_t b, const float* x, const float* gy, int rows, float* gx, float* const* dW,
                           float* const* dB, bool need_w, const float* saved, Scratch& s) {
  const int L = net.L;
  float** h = s.hp.data();
  float** zs = s.zp.data();
  for (int l = 0; l <= L; ++l) {
    const bool from_saved = saved != nullptr && l >= 1 && l < L;
    h[l] = from_saved ? const_cast<float*>(saved) + net.hoff[l] : s.h[l];
    zs[l] = from_saved ? const_cast<float*>(saved) + net.zoff[l] : s.z[l];
  }
  // h[0]: x padded with zeros.
  {
    const int64_t din = net.w[0], ip = net.wp[0];
    float* h0 = h[0];
    for (int r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < din; ++j) h0[r * ip + j] = x[r * din + j];
      for (int64_t j = din; j < ip; ++j) h0[r * ip + j] = 0.0f;
    }
  }
  const bool out_needs_fwd = net.act[L - 1] != kNone;
  const int recompute = out_needs_fwd ? L : L - 1;
  for (int l = saved != nullptr ? L - 1 : 0; l < recompute; ++l) {
    const int64_t op = net.wp[l + 1];
    float* z = net.act[l] == kSine ? zs[l + 1] : h[l + 1];
    gemm(rows, static_cast<int>(op), static_cast<int>(net.w[l]), h[l], net.wp[l], 1, net.wt(l, b), op, z, op,
         net.has_bias ? net.b(l, b) : nullptr, false);
    activate_keep(net.act[l], net.w0[l], z, h[l + 1], rows * op);
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
    if (out_needs_fwd) act_grad(net.act[L - 1], zs[L], h[L], g, rows * op);
  }
  for (int l = L - 1; l >= 0; --l) {
    const int64_t op = net.wp[l + 1], ip = net.wp[l];
    const int out = static_cast<int>(net.w[l + 1]);
    if (need_w) {
      // dW[o, i] += sum_r g[r, o] h[l][r, i]
      gemm(out, static_cast<int>(ip), rows, g, 1, op, h[l], ip, dW[l], ip, nullptr, true);
      if (net.has_bias) add_column_sums(dB[l], g, rows, out, op);
    }
    if (l == 0 && gx == nullptr) break;
    // g2 = g W  ([rows, in_p]); then through the activation of layer l - 1.
    gemm(rows, static_cast<int>(ip), out, g, op, 1, net.wpad(l, b), ip, g2, ip, nullptr, false);
    if (l > 0) act_grad(net.act[l - 1], zs[l], h[l], g2, rows * ip);
    std::swap(g, g2);
  }
  if (gx != nullptr) {
    const int64_t din = net.w[0], ip = net.wp[0];
    for (int r = 0; r < rows; ++r)
      for (int64_t j = 0; j < din; ++j) gx[r * din + j] = g[r * ip + j];
  }
}

// Double backward of one chunk for losses on dL/dx (eikonal terms), shared weights, output
// activation none. With v = the upstream gradient of gx = J^T gy, the loss term is
// <v, J^T gy> = <gy, J v>: a forward pass carrying tangents t = dh/dx v next to the values, then a
// reverse pass through both. Adds d/dW and d/db into dW, dB; writes d/dx (gx2) and d/dgy = J v
// (ggy) rows when asked.
//   forward:  z = W h + b, zt = W t;  h' = a(z), t' = a'(z) zt
//   reverse:  dW += zt_bar^T t + z_bar^T h,  db += colsum z_bar,  t_bar = zt_bar W,  h_bar = z_bar W
//             zt_bar = a'(z) t_bar,  z_bar = a'(z) h_bar + a''(z) zt t_bar   (starting zt_bar = gy)
// Sine: a' = w0 cos(w0 z) (kept in place of z), a'' = -w0^2 sin(w0 z) = -w0^2 h.
inline void double_backward_chunk(const Net& net, const float* x, const float* v, const float* gy, int rows,
                                  float* const* dW, float* const* dB, bool need_w, float* gx2, float* ggy,
                                  Scratch2& s) {
  const int L = net.L;
  const int64_t din = net.w[0], ip0 = net.wp[0];
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < ip0; ++j) {
      s.h[0][r * ip0 + j] = j < din ? x[r * din + j] : 0.0f;
      s.t[0][r * ip0 + j] = j < din ? v[r * din + j] : 0.0f;
    }
  for (int l = 0; l < L; ++l) {
    const int64_t op = net.wp[l + 1];
    const int K = static_cast<int>(net.w[l]);
    float* z = s.z[l + 1];
    float* zt = s.zt[l + 1];
    gemm(rows, static_cast<int>(op), K, s.h[l], net.wp[l], 1, net.wt(l, 0), op, z, op,
         net.has_bias ? net.b(l, 0) : nullptr, false);
    gemm(rows, static_cast<int>(op), K, s.t[l], net.wp[l], 1, net.wt(l, 0), op, zt, op, nullptr, false);
    if (l == L - 1) break;  // output activation none: y = z, J v = zt
    float* h = s.h[l + 1];
    float* t = s.t[l + 1];
    const int64_t count = rows * op;
    switch (net.act[l]) {
      case kRelu:
        for (int64_t i = 0; i < count; ++i) {
          const bool on = z[i] > 0.0f;
          h[i] = on ? z[i] : 0.0f;
          t[i] = on ? zt[i] : 0.0f;
        }
        break;
      case kSine:
        activate_keep(kSine, net.w0[l], z, h, count);  // h = sin(w0 z), z := w0 cos(w0 z)
        for (int64_t i = 0; i < count; ++i) t[i] = z[i] * zt[i];
        break;
      default:
        for (int64_t i = 0; i < count; ++i) {
          h[i] = z[i];
          t[i] = zt[i];
        }
    }
  }
  const int64_t dout = net.w[L], opL = net.wp[L];
  if (ggy != nullptr)
    for (int r = 0; r < rows; ++r)
      for (int64_t j = 0; j < dout; ++j) ggy[r * dout + j] = s.zt[L][r * opL + j];
  // reverse: adjoints of zt and z of the current layer, [rows, out_p]
  float* ztb = s.a[0];
  float* zb = s.a[1];
  float* tb = s.a[2];
  float* hb = s.a[3];
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < opL; ++j) {
      ztb[r * opL + j] = j < dout ? gy[r * dout + j] : 0.0f;
      zb[r * opL + j] = 0.0f;
    }
  for (int l = L - 1; l >= 0; --l) {
    const int64_t op = net.wp[l + 1], ip = net.wp[l];
    const int out = static_cast<int>(net.w[l + 1]);
    if (need_w) {
      gemm(out, static_cast<int>(ip), rows, ztb, 1, op, s.t[l], ip, dW[l], ip, nullptr, true);
      gemm(out, static_cast<int>(ip), rows, zb, 1, op, s.h[l], ip, dW[l], ip, nullptr, true);
      if (net.has_bias) add_column_sums(dB[l], zb, rows, out, op);
    }
    if (l == 0 && gx2 == nullptr) break;
    gemm(rows, static_cast<int>(ip), out, zb, op, 1, net.wpad(l, 0), ip, hb, ip, nullptr, false);
    if (l == 0) break;
    gemm(rows, static_cast<int>(ip), out, ztb, op, 1, net.wpad(l, 0), ip, tb, ip, nullptr, false);
    // through the activation of layer l - 1 (its pre-activation z[l], tangent zt[l], output h[l])
    const float* z = s.z[l];
    const float* zt = s.zt[l];
    const float* h = s.h[l];
    const int64_t count = rows * ip;
    switch (net.act[l - 1]) {
      case kRelu:
        for (int64_t i = 0; i < count; ++i) {
          const bool on = z[i] > 0.0f;
          ztb[i] = on ? tb[i] : 0.0f;
          zb[i] = on ? hb[i] : 0.0f;
        }
        break;
      case kSine: {
        const float c2 = -net.w0[l - 1] * net.w0[l - 1];
        for (int64_t i = 0; i < count; ++i) {  // z holds w0 cos(w0 z) here
          ztb[i] = z[i] * tb[i];
          zb[i] = z[i] * hb[i] + c2 * h[i] * zt[i] * tb[i];
        }
        break;
      }
      default:
        for (int64_t i = 0; i < count; ++i) {
          ztb[i] = tb[i];
          zb[i] = hb[i];
        }
    }
  }
  if (gx2 != nullptr)
    for (int r = 0; r < rows; ++r)
      for (int64_t j = 0; j < din; ++j) gx2[r * din + j] = hb[r * ip0 + j];
}
