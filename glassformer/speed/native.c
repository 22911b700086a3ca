/* Products of a few rows with a row-major weight, y = x W^T + b, reading the weight once.

   Compiled on the user's machine at first use by glassformer/speed/native.py, which explains
   why. Each thread takes a share of the output features; for each feature it reads the weight's
   row once, front to back, and multiplies it with up to four rows of x at a time (x is small and
   stays in the L1 cache), with fused multiply-adds in 8-wide AVX2 registers and fp32 sums. With
   fewer than four rows (decoding one sequence), it reads four weight rows from four parts of its
   share at once (few_rows). A bf16 weight is widened to fp32 in registers. */
#include <immintrin.h>
#include <stdint.h>
#include <omp.h>
#include <stdlib.h>

#include "native.h"

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

/* fp32 weight row w [n] times four rows of x, x_stride apart, into s[0..4). Two sums per row, so
   that each chain of dependent multiply-adds leaves the others time to finish. */
static void row4_f32(const float* w, const float* x, int64_t x_stride, int64_t n, float* s) {
    const float *x0 = x, *x1 = x + x_stride, *x2 = x + 2 * x_stride, *x3 = x + 3 * x_stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v = _mm256_loadu_ps(w + i), u = _mm256_loadu_ps(w + i + 8);
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x0 + i), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x1 + i), a1);
        a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x2 + i), a2);
        a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x3 + i), a3);
        c0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(x0 + i + 8), c0);
        c1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(x1 + i + 8), c1);
        c2 = _mm256_fmadd_ps(u, _mm256_loadu_ps(x2 + i + 8), c2);
        c3 = _mm256_fmadd_ps(u, _mm256_loadu_ps(x3 + i + 8), c3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(w + i);
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x0 + i), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x1 + i), a1);
        a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x2 + i), a2);
        a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x3 + i), a3);
    }
    s[0] = hsum(_mm256_add_ps(a0, c0)), s[1] = hsum(_mm256_add_ps(a1, c1));
    s[2] = hsum(_mm256_add_ps(a2, c2)), s[3] = hsum(_mm256_add_ps(a3, c3));
    for (; i < n; i++) s[0] += w[i] * x0[i], s[1] += w[i] * x1[i], s[2] += w[i] * x2[i], s[3] += w[i] * x3[i];
}

static float row1_f32(const float* w, const float* x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

float dot_f32(const float* a, const float* b, int64_t n) { return row1_f32(a, b, n); }

/* bf16: a 32-byte load holds 16 weights. Shifted left by 16 bits, its even-numbered weights are
   their fp32 values; masked to the upper half, its odd-numbered ones are. So x comes split: e
   holds each row's even-numbered features, o its odd-numbered ones (m = n / 16 * 8 of each),
   and the features past 16 * (n / 16) are taken from x itself. */
#define EVEN(v) _mm256_castsi256_ps(_mm256_slli_epi32(v, 16))
#define ODD(v) _mm256_castsi256_ps(_mm256_and_si256(v, upper))

static void row4_bf16(const uint16_t* w, const float* e, const float* o, int64_t m,
                      const float* x, int64_t x_stride, int64_t n, float* s) {
    const __m256i upper = _mm256_set1_epi32((int)0xffff0000);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    int64_t i = 0, j = 0;
    for (; i + 16 <= n; i += 16, j += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i*)(w + i));
        __m256 ev = EVEN(v), ov = ODD(v);
        a0 = _mm256_fmadd_ps(ev, _mm256_loadu_ps(e + j), a0);
        a1 = _mm256_fmadd_ps(ev, _mm256_loadu_ps(e + 2 * m + j), a1);
        a2 = _mm256_fmadd_ps(ev, _mm256_loadu_ps(e + 4 * m + j), a2);
        a3 = _mm256_fmadd_ps(ev, _mm256_loadu_ps(e + 6 * m + j), a3);
        c0 = _mm256_fmadd_ps(ov, _mm256_loadu_ps(o + j), c0);
        c1 = _mm256_fmadd_ps(ov, _mm256_loadu_ps(o + 2 * m + j), c1);
        c2 = _mm256_fmadd_ps(ov, _mm256_loadu_ps(o + 4 * m + j), c2);
        c3 = _mm256_fmadd_ps(ov, _mm256_loadu_ps(o + 6 * m + j), c3);
    }
    s[0] = hsum(_mm256_add_ps(a0, c0)), s[1] = hsum(_mm256_add_ps(a1, c1));
    s[2] = hsum(_mm256_add_ps(a2, c2)), s[3] = hsum(_mm256_add_ps(a3, c3));
    for (; i < n; i++)
        for (int r = 0; r < 4; r++) s[r] += bf16_value(w[i]) * x[r * x_stride + i];
}

static float row1_bf16(const uint16_t* w, const float* e, const float* o, const float* x, int64_t n) {
    const __m256i upper = _mm256_set1_epi32((int)0xffff0000);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
    int64_t i = 0, j = 0;
    for (; i + 32 <= n; i += 32, j += 16) {
        __m256i v = _mm256_loadu_si256((const __m256i*)(w + i)), u = _mm256_loadu_si256((const __m256i*)(w + i + 16));
        a0 = _mm256_fmadd_ps(EVEN(v), _mm256_loadu_ps(e + j), a0);
        c0 = _mm256_fmadd_ps(ODD(v), _mm256_loadu_ps(o + j), c0);
        a1 = _mm256_fmadd_ps(EVEN(u), _mm256_loadu_ps(e + j + 8), a1);
        c1 = _mm256_fmadd_ps(ODD(u), _mm256_loadu_ps(o + j + 8), c1);
    }
    for (; i + 16 <= n; i += 16, j += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i*)(w + i));
        a0 = _mm256_fmadd_ps(EVEN(v), _mm256_loadu_ps(e + j), a0);
        c0 = _mm256_fmadd_ps(ODD(v), _mm256_loadu_ps(o + j), c0);
    }
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, c0), _mm256_add_ps(a1, c1)));
    for (; i < n; i++) s += bf16_value(w[i]) * x[i];
    return s;
}

/* The output features [first, end) of thread `me` of `threads`: equal shares, multiples of 8. */
static void share(int64_t out, int me, int threads, int64_t* first, int64_t* end) {
    int64_t eights = (out + 7) / 8;
    *first = eights * me / threads * 8;
    *end = eights * (me + 1) / threads * 8;
    if (*first > out) *first = out;
    if (*end > out) *end = out;
}

/* Four rows of an fp32 weight, `apart` floats apart, times one row of x, into s[0..4). Read
   together, they are four streams from memory at once: on a 2-core AMD EPYC (AVX2), a loop summing
   1 GiB read 27-33 GB/s with one stream per thread and 31-36 GB/s with four, and the one-row
   product of a 1 GiB weight went from 23-27 GB/s (one row after the other) to 29-31. */
static void row1x4_f32(const float* w, int64_t apart, const float* x, int64_t n, float* s) {
    const float *w0 = w, *w1 = w + apart, *w2 = w + 2 * apart, *w3 = w + 3 * apart;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), v, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), v, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), v, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), v, a3);
    }
    s[0] = hsum(a0), s[1] = hsum(a1), s[2] = hsum(a2), s[3] = hsum(a3);
    for (; i < n; i++) s[0] += w0[i] * x[i], s[1] += w1[i] * x[i], s[2] += w2[i] * x[i], s[3] += w3[i] * x[i];
}

/* The same for a bf16 weight, x split into e and o as row1_bf16 reads it. */
static void row1x4_bf16(const uint16_t* w, int64_t apart, const float* e, const float* o, const float* x,
                        int64_t n, float* s) {
    const __m256i upper = _mm256_set1_epi32((int)0xffff0000);
    const uint16_t* ws[4] = {w, w + apart, w + 2 * apart, w + 3 * apart};
    __m256 a[4], c[4];
    for (int k = 0; k < 4; k++) a[k] = c[k] = _mm256_setzero_ps();
    int64_t i = 0, j = 0;
    for (; i + 16 <= n; i += 16, j += 8) {
        __m256 ve = _mm256_loadu_ps(e + j), vo = _mm256_loadu_ps(o + j);
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_loadu_si256((const __m256i*)(ws[k] + i));
            a[k] = _mm256_fmadd_ps(EVEN(v), ve, a[k]);
            c[k] = _mm256_fmadd_ps(ODD(v), vo, c[k]);
        }
    }
    for (int k = 0; k < 4; k++) {
        s[k] = hsum(_mm256_add_ps(a[k], c[k]));
        for (int64_t t = i; t < n; t++) s[k] += bf16_value(ws[k][t]) * x[t];
    }
}

/* Fewer than four rows of x: each thread cuts its share of the output features into four equal
   parts and reads their weight rows side by side (row1x4_*), one row of x at a time (the weight
   rows stay in the L1 cache for the next); what is left over, one row at a time. x_split: x split
   by split_even_odd for a bf16 weight, else NULL. Ends with a barrier, as `omp for` does. */
static void few_rows(const void* w, int64_t bf16, const float* x, const float* x_split, const float* b, float* y,
                     int64_t rows, int64_t out, int64_t in) {
    int64_t first, end, m = in / 16 * 8;
    share(out, omp_get_thread_num(), omp_get_num_threads(), &first, &end);
    int64_t part = (end - first) / 4, apart = part * in;
    const float* wf = (const float*)w;
    const uint16_t* wh = (const uint16_t*)w;
    for (int64_t f = first; f < first + part; f++)
        for (int64_t r = 0; r < rows; r++) {
            float s[4];
            if (bf16) row1x4_bf16(wh + f * in, apart, x_split + 2 * r * m, x_split + 2 * r * m + m, x + r * in, in, s);
            else row1x4_f32(wf + f * in, apart, x + r * in, in, s);
            for (int k = 0; k < 4; k++) y[r * out + f + k * part] = s[k] + (b ? b[f + k * part] : 0.f);
        }
    for (int64_t f = first + 4 * part; f < end; f++)
        for (int64_t r = 0; r < rows; r++) {
            float s = bf16 ? row1_bf16(wh + f * in, x_split + 2 * r * m, x_split + 2 * r * m + m, x + r * in, in)
                           : row1_f32(wf + f * in, x + r * in, in);
            y[r * out + f] = s + (b ? b[f] : 0.f);
        }
    #pragma omp barrier
}

/* y[r, f] = sum_i w[f, i] x[r, i] + b[f] (b may be NULL) for r < rows, f < out; w row-major
   [out, in], fp32; x [rows, in] and y [rows, out] contiguous. Called by every thread of a
   parallel region, each takes its share of the output features (an orphaned `omp for`). */
void rows_times_f32(const float* w, const float* x, const float* b, float* y, int64_t rows, int64_t out, int64_t in) {
    if (rows < 4) {
        few_rows(w, 0, x, NULL, b, y, rows, out, in);
        return;
    }
    int64_t fours = rows / 4 * 4;
    #pragma omp for schedule(static)
    for (int64_t f = 0; f < out; f++) {
        const float* wf = w + f * in;
        float bias = b ? b[f] : 0.f, s[4];
        for (int64_t r = 0; r < fours; r += 4) {
            row4_f32(wf, x + r * in, in, in, s);
            for (int k = 0; k < 4; k++) y[(r + k) * out + f] = s[k] + bias;
        }
        for (int64_t r = fours; r < rows; r++) y[r * out + f] = row1_f32(wf, x + r * in, in) + bias;
    }
}

/* x [rows, in] split into each row's even- and odd-numbered features, the layout row4_bf16 reads:
   row r's even ones at split[2rm], its odd ones at split[2rm + m], m = in / 16 * 8. */
void split_even_odd(const float* x, int64_t rows, int64_t in, float* split) {
    int64_t m = in / 16 * 8;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < m; j++) {
            split[2 * r * m + j] = x[r * in + 2 * j];
            split[2 * r * m + m + j] = x[r * in + 2 * j + 1];
        }
}

/* rows_times_f32 for a bf16 weight (its raw 16-bit patterns), x already split by split_even_odd. */
void rows_times_bf16(const uint16_t* w, const float* x, const float* split, const float* b, float* y,
                     int64_t rows, int64_t out, int64_t in) {
    if (rows < 4) {
        few_rows(w, 1, x, split, b, y, rows, out, in);
        return;
    }
    int64_t m = in / 16 * 8, fours = rows / 4 * 4;
    #pragma omp for schedule(static)
    for (int64_t f = 0; f < out; f++) {
        const uint16_t* wf = w + f * in;
        float bias = b ? b[f] : 0.f, s[4];
        for (int64_t r = 0; r < fours; r += 4) {
            row4_bf16(wf, split + 2 * r * m, split + 2 * r * m + m, m, x + r * in, in, in, s);
            for (int k = 0; k < 4; k++) y[(r + k) * out + f] = s[k] + bias;
        }
        for (int64_t r = fours; r < rows; r++)
            y[r * out + f] = row1_bf16(wf, split + 2 * r * m, split + 2 * r * m + m, x + r * in, in) + bias;
    }
}

/* 8 weights of a row of wt from element j on, as fp32. */
static inline __m256 load8(const void* wt, int64_t bf16, int64_t j) {
    if (!bf16) return _mm256_loadu_ps((const float*)wt + j);
    __m128i h = _mm_loadu_si128((const __m128i*)((const uint16_t*)wt + j));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float load1(const void* wt, int64_t bf16, int64_t j) {
    return bf16 ? bf16_value(((const uint16_t*)wt)[j]) : ((const float*)wt)[j];
}

/* sums[0..n) += sum over q < k of c[q] w[q][0..n), the rows w[q] of an fp32 or bf16 weight. */
static void add_scaled(float* sums, const void* const* w, const float* c, int64_t k, int64_t bf16, int64_t n) {
    int64_t j = 0;
    __m256 c0 = _mm256_set1_ps(c[0]);
    if (k == 4) {
        __m256 c1 = _mm256_set1_ps(c[1]), c2 = _mm256_set1_ps(c[2]), c3 = _mm256_set1_ps(c[3]);
        for (; j + 8 <= n; j += 8) {
            __m256 acc = _mm256_fmadd_ps(c0, load8(w[0], bf16, j), _mm256_loadu_ps(sums + j));
            acc = _mm256_fmadd_ps(c1, load8(w[1], bf16, j), acc);
            acc = _mm256_fmadd_ps(c2, load8(w[2], bf16, j), acc);
            _mm256_storeu_ps(sums + j, _mm256_fmadd_ps(c3, load8(w[3], bf16, j), acc));
        }
    } else {
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(sums + j, _mm256_fmadd_ps(c0, load8(w[0], bf16, j), _mm256_loadu_ps(sums + j)));
    }
    for (; j < n; j++)
        for (int64_t q = 0; q < k; q++) sums[j] += c[q] * load1(w[q], bf16, j);
}

/* rows_times_f32 and rows_times_bf16 for a column-major weight: wt [in, out] is W's transpose,
   row-major (the layout the measured choice may have given it), and x W^T = sum_i x_i wt[i], a
   weighted sum of wt's rows. Each thread takes a share of the input features and reads their rows
   of wt front to back, CM_TILE outputs at a time, four rows from four parts of its share together
   (four streams, as in few_rows), adding them, times each row's x_i, into its own partial sums
   [rows, out] in `partial` (threads x rows x out floats); then the threads add up the partial
   sums, each for its share of the outputs. */
void rows_times_cm(const void* wt, int64_t bf16, const float* x, const float* b, float* y,
                   int64_t rows, int64_t out, int64_t in, float* partial) {
    int me = omp_get_thread_num(), threads = omp_get_num_threads();
    int64_t i0 = in * me / threads, i1 = in * (me + 1) / threads, first, end;
    /* Its rows of wt in four equal parts, read side by side (see row1x4_f32), then what is left. */
    int64_t part = (i1 - i0) / 4, steps = i1 - i0 - 3 * part, size = bf16 ? 2 : 4;
    float* mine = partial + (int64_t)me * rows * out;
    for (int64_t f0 = 0; f0 < out; f0 += CM_TILE) {
        int64_t n = out - f0 < CM_TILE ? out - f0 : CM_TILE;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < n; j++) mine[r * out + f0 + j] = 0.f;
        for (int64_t t = 0; t < steps; t++) {
            int64_t k = t < part ? 4 : 1, at[4];
            const void* w[4];
            float c[4];
            for (int64_t q = 0; q < k; q++) {
                at[q] = t < part ? i0 + t + q * part : i0 + 3 * part + t;
                w[q] = (const char*)wt + (at[q] * out + f0) * size;
            }
            for (int64_t r = 0; r < rows; r++) {
                for (int64_t q = 0; q < k; q++) c[q] = x[r * in + at[q]];
                add_scaled(mine + r * out + f0, w, c, k, bf16, n);
            }
        }
    }
    #pragma omp barrier
    share(out, me, threads, &first, &end);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t f = first; f < end; f++) {
            float s = 0.f;
            for (int t = 0; t < threads; t++) s += partial[((int64_t)t * rows + r) * out + f];
            y[r * out + f] = s + (b ? b[f] : 0.f);
        }
    #pragma omp barrier
}

/* y = x W^T + b on `threads` threads, for an fp32 weight. Returns 0, or 1 if it could not run. */
int linear_f32(const float* w, const float* x, const float* b, float* y,
               int64_t rows, int64_t out, int64_t in, int threads) {
    #pragma omp parallel num_threads(threads)
    rows_times_f32(w, x, b, y, rows, out, in);
    return 0;
}

/* The same for a bf16 weight and fp32 x, b and y. */
int linear_bf16(const uint16_t* w, const float* x, const float* b, float* y,
                int64_t rows, int64_t out, int64_t in, int threads) {
    float* split = (float*)malloc(sizeof(float) * (size_t)SPLIT_FLOATS(rows, in));
    if (!split) return 1;
    split_even_odd(x, rows, in, split);
    #pragma omp parallel num_threads(threads)
    rows_times_bf16(w, x, split, b, y, rows, out, in);
    free(split);
    return 0;
}

/* rows_times_cm on `threads` threads, for a column-major fp32 or bf16 weight (wt [in, out]). Returns
   0, or 1 if there was no memory for the partial sums. */
int linear_cm(const void* wt, int64_t bf16, const float* x, const float* b, float* y,
              int64_t rows, int64_t out, int64_t in, int threads) {
    float* partial = (float*)malloc(sizeof(float) * (size_t)(threads * rows * out));
    if (!partial) return 1;
    #pragma omp parallel num_threads(threads)
    rows_times_cm(wt, bf16, x, b, y, rows, out, in, partial);
    free(partial);
    return 0;
}

/* The sum of x [n], read on `threads` threads the way few_rows reads a weight: each thread its
   share, in four parts side by side. Measures the read bandwidth of memory as these kernels see it
   (glassformer/speed/bandwidth.py): on the machine measured, faster than x.sum()'s one stream per
   thread. */
double read_f32(const float* x, int64_t n, int threads) {
    double total = 0.0;
    #pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        int me = omp_get_thread_num(), all = omp_get_num_threads();
        int64_t first = n * me / all, end = n * (me + 1) / all, part = (end - first) / 32 * 8;
        const float *x0 = x + first, *x1 = x0 + part, *x2 = x1 + part, *x3 = x2 + part;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < part; i += 8) {
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x0 + i));
            a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x1 + i));
            a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x2 + i));
            a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x3 + i));
        }
        double s = (double)hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (int64_t i = first + 4 * part; i < end; i++) s += x[i];
        total += s;
    }
    return total;
}
