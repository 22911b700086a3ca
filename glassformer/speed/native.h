/* What native.c offers the other C files of glassformer/speed (compiled together into one library). */
#ifndef GLASSFORMER_NATIVE_H
#define GLASSFORMER_NATIVE_H
#include <stdint.h>

/* Inside a parallel region: y = x W^T + b, the output features shared among the threads. */
void rows_times_f32(const float* w, const float* x, const float* b, float* y, int64_t rows, int64_t out, int64_t in);
void split_even_odd(const float* x, int64_t rows, int64_t in, float* split);
void rows_times_bf16(const uint16_t* w, const float* x, const float* split, const float* b, float* y,
                     int64_t rows, int64_t out, int64_t in);
/* The same for a column-major weight (wt [in, out] row-major, fp32 or bf16); partial: scratch of
   threads x rows x out floats. */
#define CM_TILE 1024
void rows_times_cm(const void* wt, int64_t bf16, const float* x, const float* b, float* y,
                   int64_t rows, int64_t out, int64_t in, float* partial);
/* sum_i a[i] b[i] in 8-wide fused multiply-adds. */
float dot_f32(const float* a, const float* b, int64_t n);
/* The fp32 value of a bf16 number's bits (exact). */
static inline float bf16_value(uint16_t h) {
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}
/* Floats split_even_odd writes for rows of `in` features. */
#define SPLIT_FLOATS(rows, in) ((rows) * 2 * ((in) / 16 * 8) + 1)

#endif
