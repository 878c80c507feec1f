// C interface of the fused MLP kernels: raw pointers and plain structs only, so the .cu files
// build with nvcc alone (no torch headers) and bindings.cpp stays a thin tensor-to-pointer layer.
//
// Layout conventions (all float32, contiguous; "rows" = B * N points, instance-major):
//   x      [B?, N, d_in]     x_stride = N * d_in, or 0 when every instance shares the points
//   y      [rows, d_out]
//   save_h [n_layers - 1, rows, width]   hidden activations h_l = act(z_l), written when non-null
//   save_z [n_layers - 1, rows, width]   hidden pre-activations z_l (sine only: needs cos(w0 z))
// Weight matrices are passed pre-packed by the caller (see inr/backends/cuda.py); each has an
// instance stride in floats, 0 for a matrix shared by all instances.
#pragma once
#include <cuda_runtime_api.h>
#include <stdint.h>

#define INR_MLP_MAX_LAYERS 16
#define INR_MLP_MAX_D_OUT 16

enum {
  INR_ACT_NONE = 0,
  INR_ACT_RELU = 1,
  INR_ACT_SINE = 2,
  INR_ACT_SIGMOID = 3,
  INR_ACT_EXP = 4
};

typedef struct {
  int B, N, d_in, d_out, width, n_layers;
  int act, out_act;
  float w0_first, w0_hidden;
  const float* x;
  int64_t x_stride;
  // Layer l as [K_l, nout_l] = W_l^T: layer 0 [round4(d_in), width] (zero rows past d_in),
  // hidden [width, width], last [width, inr_mlp_dout_pad(d_out)] (zero columns past d_out).
  const float* w[INR_MLP_MAX_LAYERS];
  int64_t w_stride[INR_MLP_MAX_LAYERS];
  // Biases [nout_l] (the last padded like its matrix), or null.
  const float* b[INR_MLP_MAX_LAYERS];
  int64_t b_stride[INR_MLP_MAX_LAYERS];
  float* y;
  float* save_h;
  float* save_z;
} InrMlpFwdArgs;

typedef struct {
  int B, N, d_in, d_out, width, n_layers;
  int act, out_act;
  float w0_first, w0_hidden;
  const float* dy;      // [rows, d_out]
  const float* y;       // [rows, d_out], the forward output
  const float* save_h;  // as in the forward
  const float* save_z;  // sine only, else null
  // Layer l as [out_l, in_l] (the torch layout): layer 0 [width, din_pad(d_in)] (zero columns
  // past d_in), hidden [width, width], last [round4(d_out), width] (zero rows past d_out).
  const float* w[INR_MLP_MAX_LAYERS];
  int64_t w_stride[INR_MLP_MAX_LAYERS];
  // Outputs: dL/dz_l for every layer ([rows, width], last [rows, d_out]) for the weight
  // gradients, and dL/dx [rows, d_in] (null when x needs no gradient).
  float* dz[INR_MLP_MAX_LAYERS];
  float* dx;
  // Bias gradients [out_l] per instance (db_stride = out_l) or shared (0), ACCUMULATED into:
  // the caller zeroes them. Null for a layer whose bias needs no gradient.
  float* db[INR_MLP_MAX_LAYERS];
  int64_t db_stride[INR_MLP_MAX_LAYERS];
} InrMlpBwdArgs;

// Value and input Jacobian in one pass (forward-mode tangents), hidden activations relu, sine or
// none, output activation none, d_in <= INR_MLP_JVP_MAX_D_IN. Every point carries C = 1 + d_in
// rows through the layers: its value (row 0) and d/dx_k of it (row 1 + k); a row's index is
// point * C + c. Weights as in InrMlpFwdArgs (forward) / InrMlpBwdArgs (backward).
#define INR_MLP_JVP_MAX_D_IN 3

typedef struct {
  int B, N, d_in, d_out, width, n_layers;
  int act;
  float w0_first, w0_hidden;
  const float* x;  // [B?, N, d_in], x_stride as in InrMlpFwdArgs
  int64_t x_stride;
  const float* w[INR_MLP_MAX_LAYERS];  // forward layout (W^T, padded as InrMlpFwdArgs)
  int64_t w_stride[INR_MLP_MAX_LAYERS];
  const float* b[INR_MLP_MAX_LAYERS];
  int64_t b_stride[INR_MLP_MAX_LAYERS];
  float* y;       // [rows, d_out]
  float* jac;     // [rows, d_out, d_in]
  float* save_h;  // [n_layers - 1, rows * C, width]: act(z) and its tangents, or null (inference)
  float* save_z;  // [n_layers - 1, rows * C, width]: z and its tangents (sine only), or null
} InrMlpJvpArgs;

typedef struct {
  int B, N, d_in, d_out, width, n_layers;
  int act;
  float w0_first, w0_hidden;
  const float* dy;    // [rows, d_out]
  const float* djac;  // [rows, d_out, d_in], or null (zero)
  const float* save_h;
  const float* save_z;  // sine only
  const float* w[INR_MLP_MAX_LAYERS];  // backward layout (torch's [out, in], padded as InrMlpBwdArgs)
  int64_t w_stride[INR_MLP_MAX_LAYERS];
  // Outputs: dL/dz_l of the hidden layers and their tangents, [rows * C, width] for l < n_layers - 1
  // (the caller forms the weight and bias gradients), and dL/dx [rows, d_in] or null.
  float* dz[INR_MLP_MAX_LAYERS];
  float* dx;
} InrMlpJvpBwdArgs;

// Tensor-core MLP: hidden and output layers as 16x16x16 WMMA products with fp16 or bf16 operands
// and fp32 accumulation; layer 0 (x W_0^T) and dL/dx in fp32 on the CUDA cores (coordinates and
// SIREN's w0 = 30 need the precision; the layer is d_in x width, small). Saved activations and
// dL/dz are in the operand type (2 bytes), pre-activations (sine) in fp32.
enum { INR_PREC_FP16 = 1, INR_PREC_BF16 = 2 };

typedef struct {
  int B, N, d_in, d_out, width, n_layers;
  int act, out_act, precision;
  float w0_first, w0_hidden;
  const float* x;  // as InrMlpFwdArgs
  int64_t x_stride;
  const float* w0t;  // layer 0 as W^T [round4(d_in), width], fp32
  int64_t w0t_stride;
  // Layers l >= 1 in the operand type, torch layout [out, width]: hidden [width, width], last
  // [16, width] (zero rows past d_out). w[0] is unused.
  const void* w[INR_MLP_MAX_LAYERS];
  int64_t w_stride[INR_MLP_MAX_LAYERS];
  const float* b[INR_MLP_MAX_LAYERS];  // fp32 biases [out] (the last padded to 16), or null
  int64_t b_stride[INR_MLP_MAX_LAYERS];
  float* y;       // [rows, d_out]
  void* save_h;   // [n_layers - 1, rows, width] operand type, or null (inference)
  float* save_z;  // [n_layers - 1, rows, width] fp32 (sine only), or null
} InrMlpTcFwdArgs;

typedef struct {
  int B, N, d_in, d_out, width, n_layers;
  int act, out_act, precision;
  float w0_first, w0_hidden;
  const float* dy;  // [rows, d_out]
  const float* y;   // [rows, d_out]
  const void* save_h;
  const float* save_z;
  const float* w0;  // layer 0 [width, round4(d_in)] fp32 (torch layout, zero columns past d_in)
  int64_t w0_stride;
  const void* w[INR_MLP_MAX_LAYERS];  // as InrMlpTcFwdArgs
  int64_t w_stride[INR_MLP_MAX_LAYERS];
  // Outputs, operand type: dL/dz_l [rows, width] for l < n_layers - 1 and [rows, d_out] for the
  // last (weight gradients are formed by the caller); dL/dx [rows, d_in] fp32 or null.
  void* dz[INR_MLP_MAX_LAYERS];
  float* dx;
  // Bias gradients, fp32, ACCUMULATED (the caller zeroes them): the column sums of the
  // operand-type dz_l, [out] or per instance [B, out] (db_stride), or null where not wanted.
  float* db[INR_MLP_MAX_LAYERS];
  int64_t db_stride[INR_MLP_MAX_LAYERS];
} InrMlpTcBwdArgs;

#ifdef __cplusplus
extern "C" {
#endif

// Both return cudaSuccess or the launch error; cudaErrorInvalidValue for unsupported shapes.
cudaError_t inr_mlp_forward(const InrMlpFwdArgs* args, cudaStream_t stream);
cudaError_t inr_mlp_backward(const InrMlpBwdArgs* args, cudaStream_t stream);
cudaError_t inr_mlp_tc_forward(const InrMlpTcFwdArgs* args, cudaStream_t stream);
cudaError_t inr_mlp_tc_backward(const InrMlpTcBwdArgs* args, cudaStream_t stream);
cudaError_t inr_mlp_jvp_forward(const InrMlpJvpArgs* args, cudaStream_t stream);
cudaError_t inr_mlp_jvp_backward(const InrMlpJvpBwdArgs* args, cudaStream_t stream);

// Column padding of the layer-0 matrix the backward expects: 4, 16, 32 or 64.
int inr_mlp_din_pad(int d_in);
// Column padding of the last layer's matrix the forward expects: 4 or 16.
int inr_mlp_dout_pad(int d_out);

#ifdef __cplusplus
}
#endif
