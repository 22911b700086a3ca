/* Every layer of a decoder-only Transformer for one decoding step, in one call.

   Decoding one token runs each layer's norms, products, attention over the KV cache and
   feed-forward for a few rows. Through PyTorch that is a few dozen operator calls per layer, each
   costing microseconds before any arithmetic: on a 6-layer, 384-wide model more time than reading
   the weights. Here the whole stack runs in one parallel region: the threads share each product's
   output features (native.c's kernels), each attention head, each row's norm, and meet at a
   barrier between the steps. Compiled with native.c by glassformer/speed/native.py; the layout
   of the structs below is mirrored there with ctypes. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "native.h"

typedef struct {
    const void* w;  /* W [out, in], fp32 or bf16; NULL: no such product */
    const float* b; /* [out] or NULL */
    int64_t out, in, bf16;
    int64_t column_major; /* 1: w holds W's transpose [in, out], row-major */
} Product;

typedef struct {
    const float* w;
    const float* b; /* or NULL */
    double eps;
    int64_t rms; /* 1: RMSNorm, x / rms(x) w; 0: LayerNorm, (x - mean) / std w + b */
} Norm;

typedef struct {
    Norm attn_norm, ffn_norm;
    Product qkv, o; /* qkv: [(H + 2 H_kv) D, d_model], queries, then keys, then values */
    Product up, gate, down; /* gate.w NULL: act(x W_up) W_down; else act(x W_gate) * (x W_up), then W_down */
    int64_t pre_norm;
} Layer;

/* Before the first layer and after the last: the embedding (token table, positions) and the
   final norm and output projection. A NULL table or head weight leaves that end to the caller. */
typedef struct {
    const void* token; /* [vocab, d_model], fp32 or bf16 (token_bf16); NULL: x comes embedded */
    int64_t vocab, token_bf16, token_stride, feature_stride; /* element (t, i) at t token_stride + i feature_stride */
    const float* position; /* [n_positions, d_model]: learned or sinusoidal positions; or NULL */
    int64_t n_positions;
    double token_scale;
    Norm embed_norm, final_norm; /* w NULL: none */
    Product head;                /* w NULL: the caller projects the hidden states itself */
    double head_scale;           /* of the hidden states before the head */
    const float* inv_freq;       /* rotary positions' theta_i [D / 2]: the step turns its own angles; or NULL */
} Ends;

typedef struct {
    int64_t rows, tokens; /* rows of `tokens` new tokens each, at positions pos ... pos + tokens - 1 */
    int64_t d_model, n_heads, n_kv_heads, d_head, d_ff, max_len, pos;
    int64_t activation; /* 0 relu, 1 gelu (erf), 2 gelu (tanh), 3 silu */
    double scale;       /* of the scores q . k */
    const float* cos;   /* rotary positions: cos and signed sin [rows x tokens or 1, D], or NULL (or Ends' own) */
    const float* sin;
    int64_t rope_stride; /* 0 (one for every token) or D */
    const uint8_t* valid; /* [rows, pos + tokens]: the keys each row may attend to; NULL: all */
    int64_t threads;
    const int64_t* ids;       /* [rows x tokens] token ids, where Ends has a token table */
    const int64_t* positions; /* [rows x tokens] position ids, for Ends' position table or rotary angles */
    float* logits;            /* [rows x tokens, vocab], or [rows, vocab] with last_only, where Ends has a head */
    int64_t last_only;        /* only the last token's logits of each row */
} Step;

/* y = x W^T + b inside the parallel region; split is scratch for a bf16 weight's input or a
   column-major weight's partial sums. */
static void product(const Product* p, const float* x, int64_t rows, float* y, float* split) {
    if (p->column_major) { /* split has room for its partial sums too */
        rows_times_cm(p->w, p->bf16, x, p->b, y, rows, p->out, p->in, split);
        return;
    }
    if (!p->bf16) {
        rows_times_f32((const float*)p->w, x, p->b, y, rows, p->out, p->in);
        return;
    }
    #pragma omp single
    split_even_odd(x, rows, p->in, split);
    rows_times_bf16((const uint16_t*)p->w, x, split, p->b, y, rows, p->out, p->in);
}

/* y[r] = norm(x[r]) for each row (y may be x). */
static void norm_rows(const Norm* n, const float* x, float* y, int64_t rows, int64_t d) {
    #pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float* xr = x + r * d;
        float* yr = y + r * d;
        double mean = 0.0, sq = 0.0;
        if (!n->rms) {
            for (int64_t i = 0; i < d; i++) mean += xr[i];
            mean /= (double)d;
        }
        for (int64_t i = 0; i < d; i++) sq += (xr[i] - mean) * (xr[i] - mean);
        float m = (float)mean, rstd = (float)(1.0 / sqrt(sq / (double)d + n->eps));
        for (int64_t i = 0; i < d; i++) yr[i] = (xr[i] - m) * rstd * n->w[i] + (n->b ? n->b[i] : 0.f);
    }
}

/* x = x + y (pre-norm) or norm(x + y) (post-norm), each row. */
static void add_residual(const Layer* l, const Norm* n, float* x, const float* y, int64_t rows, int64_t d) {
    #pragma omp for schedule(static)
    for (int64_t i = 0; i < rows * d; i++) x[i] += y[i];
    if (!l->pre_norm) norm_rows(n, x, x, rows, d);
}

/* e^x for 8 floats: 2^n e^r with n = round(x / ln 2) and e^r by Cephes' polynomial for expf
   (relative error about 1e-7); x clamped to [-87.3, 88.3], where 2^n stays a normal float. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x); /* ln 2 in two parts */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
}

/* The feed-forward's activation of 8 floats, in AVX2 (one scalar call of erff or tanhf per
   element cost a 6-layer GPT-2 1.4 ms per step at 16 rows). gelu: 0.5 x (1 + erf(x / sqrt 2)),
   erf by Abramowitz and Stegun's 7.1.26 (absolute error below 1.5e-7); gelu_tanh: tanh(z) as
   1 - 2 / (e^2z + 1); silu: x / (1 + e^-x). */
static inline __m256 activate8(__m256 x, int64_t activation) {
    const __m256 one = _mm256_set1_ps(1.f), half = _mm256_set1_ps(0.5f), sign = _mm256_set1_ps(-0.f);
    switch (activation) {
        case 0: return _mm256_max_ps(x, _mm256_setzero_ps());
        case 1: {
            __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)), az = _mm256_andnot_ps(sign, z);
            __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), az, one));
            __m256 poly = _mm256_set1_ps(1.061405429f);
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
            poly = _mm256_mul_ps(poly, t);
            __m256 erf = _mm256_fnmadd_ps(poly, exp8(_mm256_mul_ps(_mm256_xor_ps(az, sign), az)), one);
            erf = _mm256_or_ps(erf, _mm256_and_ps(z, sign)); /* odd: the sign of z */
            return _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, erf));
        }
        case 2: {
            __m256 cube = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
            __m256 z = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                     _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), cube, x));
            __m256 e = exp8(_mm256_add_ps(z, z));
            __m256 tanh = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, one)));
            return _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, tanh));
        }
        default: return _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_xor_ps(x, sign))));
    }
}

/* a = act(a), or act(g) * a where g is not NULL, over n floats, shared among the threads. */
static void activate_all(float* a, const float* g, int64_t n, int64_t activation) {
    #pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i += 8) {
        if (n - i >= 8) {
            __m256 y = activate8(_mm256_loadu_ps(g ? g + i : a + i), activation);
            _mm256_storeu_ps(a + i, g ? _mm256_mul_ps(y, _mm256_loadu_ps(a + i)) : y);
            continue;
        }
        float in[8] = {0}, out[8]; /* the last few */
        for (int64_t k = i; k < n; k++) in[k - i] = g ? g[k] : a[k];
        _mm256_storeu_ps(out, activate8(_mm256_loadu_ps(in), activation));
        for (int64_t k = i; k < n; k++) a[k] = g ? out[k - i] * a[k] : out[k - i];
    }
}

/* activate_all on `threads` threads, for the tests. */
void activation(float* a, const float* g, int64_t n, int64_t code, int64_t threads) {
    #pragma omp parallel num_threads(threads)
    activate_all(a, g, n, code);
}

/* x [D] rotated in place: x cos + roll(x, D / 2) sin, with sin's first half negated. */
static void rotate(float* x, const float* cos, const float* sin, int64_t d) {
    float rolled[1024];
    int64_t half = d / 2;
    for (int64_t i = 0; i < d; i++) rolled[i] = x[(i + half) % d];
    for (int64_t i = 0; i < d; i++) x[i] = x[i] * cos[i] + rolled[i] * sin[i];
}

/* Queries and keys rotated, this step's keys and values written to the caches k and v [rows, H_kv,
   max_len, D], then each token's heads attend over the keys up to its own position (causal); the
   heads' contexts merged into ctx [rows x tokens, H D]. A query whose keys are all masked (a
   left-padding token) gets zeros. cos and sin: rotary positions' (signed sin, see rotate), a row per
   token (rope_stride D) or one for all (0); or NULL. */
static void attend(const Step* s, const float* cos, const float* sin, int64_t rope_stride, float* k_cache,
                   float* v_cache, float* qkv, float* scores, float* ctx) {
    int64_t n = s->rows * s->tokens, H = s->n_heads, Hkv = s->n_kv_heads, D = s->d_head, L = s->max_len;
    int64_t width = (H + 2 * Hkv) * D, keys = s->pos + s->tokens;
    #pragma omp for schedule(static)
    for (int64_t i = 0; i < n * (H + Hkv); i++) {
        int64_t token = i / (H + Hkv), j = i % (H + Hkv), r = token / s->tokens, t = token % s->tokens;
        float* part = qkv + token * width + j * D;
        if (cos) rotate(part, cos + token * rope_stride, sin + token * rope_stride, D);
        if (j >= H) { /* a key head, and its value head: into the caches */
            int64_t at = ((r * Hkv + (j - H)) * L + s->pos + t) * D;
            const float* value = part + Hkv * D;
            for (int64_t e = 0; e < D; e++) k_cache[at + e] = part[e], v_cache[at + e] = value[e];
        }
    }
    #pragma omp for schedule(static)
    for (int64_t i = 0; i < n * H; i++) {
        int64_t token = i / H, h = i % H, g = h / (H / Hkv), r = token / s->tokens;
        int64_t seen = s->pos + token % s->tokens + 1; /* keys 0 .. its own position */
        const float* q = qkv + token * width + h * D;
        const float* k = k_cache + (r * Hkv + g) * L * D;
        const float* v = v_cache + (r * Hkv + g) * L * D;
        const uint8_t* valid = s->valid ? s->valid + r * keys : NULL;
        float* p = scores + i * keys;
        float top = -INFINITY, total = 0.f;
        for (int64_t t = 0; t < seen; t++) {
            p[t] = (valid && !valid[t]) ? -INFINITY : (float)s->scale * dot_f32(q, k + t * D, D);
            if (p[t] > top) top = p[t];
        }
        float* c = ctx + token * H * D + h * D;
        for (int64_t e = 0; e < D; e++) c[e] = 0.f;
        if (top == -INFINITY) continue;
        for (int64_t t = 0; t < seen; t++) total += (p[t] = expf(p[t] - top));
        for (int64_t t = 0; t < seen; t++) {
            float w = p[t] / total;
            const float* vt = v + t * D;
            for (int64_t e = 0; e < D; e++) c[e] += w * vt[e];
        }
    }
}

/* x [n, d] = token rows (times token_scale) + position rows, then the embedding's norm if any:
   Embeddings.forward's operations in its order. */
static void embed(const Ends* e, const Step* s, float* x, int64_t n, int64_t d) {
    #pragma omp for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float* row = x + r * d;
        const float* pos = e->position ? e->position + s->positions[r] * d : NULL;
        for (int64_t i = 0; i < d; i++) {
            int64_t at = s->ids[r] * e->token_stride + i * e->feature_stride;
            float t = e->token_bf16 ? bf16_value(((const uint16_t*)e->token)[at]) : ((const float*)e->token)[at];
            if (e->token_scale != 1.0) t *= (float)e->token_scale;
            row[i] = pos ? t + pos[i] : t;
        }
    }
    if (e->embed_norm.w) norm_rows(&e->embed_norm, x, x, n, d);
}

/* logits = head(final_norm(x) * head_scale) for every token of x, or each row's last one; h:
   scratch of n x d floats. */
static void project(const Ends* e, const Step* s, const float* x, float* h, float* split, int64_t n, int64_t d) {
    const float* in = x;
    if (s->last_only && s->tokens > 1) {
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < s->rows; r++)
            for (int64_t i = 0; i < d; i++) h[r * d + i] = x[((r + 1) * s->tokens - 1) * d + i];
        in = h, n = s->rows;
    }
    if (e->final_norm.w) {
        norm_rows(&e->final_norm, in, h, n, d);
        in = h;
    }
    if (e->head_scale != 1.0) {
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < n * d; i++) h[i] = in[i] * (float)e->head_scale;
        in = h;
    }
    product(&e->head, in, n, s->logits, split);
}

/* cos and signed sin [n, D] of each token's rotary angles, positions[r] theta_i (as
   RotaryEmbedding.forward, then decode_step's signed sin: the first half negated). */
static void turn(const float* inv_freq, const int64_t* positions, float* cos, float* sin, int64_t n, int64_t D) {
    int64_t half = D / 2;
    #pragma omp for schedule(static)
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < half; i++) {
            float angle = (float)positions[r] * inv_freq[i], c = cosf(angle), s = sinf(angle);
            cos[r * D + i] = cos[r * D + half + i] = c;
            sin[r * D + i] = -s;
            sin[r * D + half + i] = s;
        }
}

/* Floats of scratch a product of n rows needs: a bf16 weight's split input, a column-major one's
   partial sums. */
static int64_t scratch_for(const Product* p, int64_t n, int64_t threads) {
    if (!p->w) return 0;
    if (p->column_major) return threads * n * p->out;
    return p->bf16 ? SPLIT_FLOATS(n, p->in) : 0;
}

/* Whether every token id and position id is inside its table (else nothing may be read). */
static int ids_fit(const Ends* e, const Step* s, int64_t n) {
    for (int64_t r = 0; r < n; r++) {
        if (e->token && (s->ids[r] < 0 || s->ids[r] >= e->vocab)) return 0;
        if (e->token && e->position && (s->positions[r] < 0 || s->positions[r] >= e->n_positions)) return 0;
    }
    return 1;
}

/* Floats of scratch a step of s needs with up to `keys` keys per row (see run_step). */
static size_t step_floats(const Step* s, const Ends* e, const Layer* layers, int64_t n_layers, int64_t keys) {
    int64_t n = s->rows * s->tokens, d = s->d_model, H = s->n_heads, D = s->d_head, F = s->d_ff;
    int64_t width = (H + 2 * s->n_kv_heads) * D, scratch = scratch_for(&e->head, n, s->threads);
    for (int64_t i = 0; i < n_layers; i++) {
        const Product* parts[] = {&layers[i].qkv, &layers[i].o, &layers[i].up, &layers[i].gate, &layers[i].down};
        for (int j = 0; j < 5; j++) {
            int64_t need = scratch_for(parts[j], n, s->threads);
            if (need > scratch) scratch = need;
        }
    }
    return (size_t)(n * (2 * d + width + H * D + 2 * F + H * keys + 2 * D) + scratch + 1);
}

/* One step (decode_layers' work) with its scratch in buffer, of step_floats floats or more. */
static void run_step(const Step* s, const Ends* e, const Layer* layers, int64_t n_layers, float* x,
                     float* const* k, float* const* v, float* buffer) {
    int64_t n = s->rows * s->tokens, d = s->d_model, H = s->n_heads, D = s->d_head, F = s->d_ff; /* n: rows of x */
    int64_t keys = s->pos + s->tokens, width = (H + 2 * s->n_kv_heads) * D;
    float *h = buffer, *qkv = h + n * d, *ctx = qkv + n * width, *y = ctx + n * H * D, *a = y + n * d;
    float *g = a + n * F, *scores = g + n * F, *angles = scores + n * H * keys, *split = angles + 2 * n * D;
    const float *cos = s->cos, *sin = s->sin;
    int64_t rope_stride = s->rope_stride;
    if (e->inv_freq) cos = angles, sin = angles + n * D, rope_stride = D;
    #pragma omp parallel num_threads(s->threads)
    {
        if (e->token) embed(e, s, x, n, d);
        if (e->inv_freq) turn(e->inv_freq, s->positions, angles, angles + n * D, n, D);
        for (int64_t i = 0; i < n_layers; i++) {
            const Layer* l = layers + i;
            if (l->pre_norm) norm_rows(&l->attn_norm, x, h, n, d);
            product(&l->qkv, l->pre_norm ? h : x, n, qkv, split);
            attend(s, cos, sin, rope_stride, k[i], v[i], qkv, scores, ctx);
            product(&l->o, ctx, n, y, split);
            add_residual(l, &l->attn_norm, x, y, n, d);

            if (l->pre_norm) norm_rows(&l->ffn_norm, x, h, n, d);
            const float* in = l->pre_norm ? h : x;
            product(&l->up, in, n, a, split);
            if (l->gate.w) product(&l->gate, in, n, g, split);
            activate_all(a, l->gate.w ? g : NULL, n * F, s->activation);
            product(&l->down, a, n, y, split);
            add_residual(l, &l->ffn_norm, x, y, n, d);
        }
        if (e->head.w) project(e, s, x, h, split, n, d);
    }
}

/* x [rows x tokens, d_model]: this step's hidden states in (or, where e has a token table, out
   only: the step embeds s->ids itself), every layer's output out; k[i] and v[i]: layer i's caches;
   where e has a head, the logits into s->logits. Nothing but x, the caches, the logits and its own
   scratch is written, so calls from several threads on the same layers (each with its own step and
   caches) do not meet. Returns 0; 1 when there is no memory for the scratch buffers, 2 when a
   token or position id is outside its table (nothing written then). */
int decode_layers(const Step* s, const Ends* e, const Layer* layers, int64_t n_layers, float* x,
                  float* const* k, float* const* v) {
    if (!ids_fit(e, s, s->rows * s->tokens)) return 2;
    float* buffer = (float*)malloc(sizeof(float) * step_floats(s, e, layers, n_layers, s->pos + s->tokens));
    if (!buffer) return 1;
    run_step(s, e, layers, n_layers, x, k, v, buffer);
    free(buffer);
    return 0;
}

/* The index of row's largest value (the first of equals; the first NaN where there is one, as
   torch.argmax) and its log-probability, log softmax(row)[index] = -log sum_i e^(row[i] - max), the
   exponentials by exp8 summed 8 at a time in fp32 (as PyTorch's log_softmax), the 8 sums in double. */
static int64_t greedy_choice(const float* row, int64_t V, float* log_prob) {
    __m256 top8 = _mm256_set1_ps(-INFINITY), nan8 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= V; i += 8) {
        __m256 x = _mm256_loadu_ps(row + i);
        nan8 = _mm256_or_ps(nan8, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        top8 = _mm256_max_ps(top8, x);
    }
    float lanes[8], top = -INFINITY;
    _mm256_storeu_ps(lanes, top8);
    for (int j = 0; j < 8; j++) top = lanes[j] > top ? lanes[j] : top;
    int nan = _mm256_movemask_ps(nan8) != 0;
    for (; i < V; i++) nan |= isnan(row[i]), top = row[i] > top ? row[i] : top;
    int64_t best = 0;
    if (nan) {
        while (!isnan(row[best])) best++;
        *log_prob = NAN;
        return best;
    }
    while (best < V - 1 && row[best] != top) best++;
    __m256 sum8 = _mm256_setzero_ps(), top_8 = _mm256_set1_ps(top);
    for (i = 0; i + 8 <= V; i += 8) sum8 = _mm256_add_ps(sum8, exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), top_8)));
    _mm256_storeu_ps(lanes, sum8);
    double total = 0.0;
    for (int j = 0; j < 8; j++) total += lanes[j];
    for (; i < V; i++) total += exp((double)row[i] - top);
    *log_prob = (float)(-log(total)); /* row[best] - top - log(total), with row[best] = top */
    return best;
}

/* Greedy decoding of one token per row for up to n steps, in one call: s->ids [rows] are fed at
   cache position s->pos (s->tokens 1, s->positions [rows] their position ids), each step's logits
   (into s->logits [rows, vocab]) give each row's next token, which is fed at the next step. Row r
   stops after limits[r] tokens (0: stopped already) or on a token of stops[n_stops]; the loop ends when
   every row has stopped or after n steps. A stopped row goes on being fed its own choices (ignored).
   s->valid [rows, pos + 1] (or NULL) marks the keys each row may attend to; the keys written later are
   all valid. Position ids grow by one a step, up to max_position. Out: tokens and log_probs [rows, n],
   column j the tokens chosen at step j; the last column's tokens are not fed. Returns the steps run
   (each fed one token per row): n or fewer; 0 with nothing written when an id of the first step is
   outside its table (a later one ends the loop before that step); -1 when there is no memory. */
int64_t decode_greedy(const Step* s, const Ends* e, const Layer* layers, int64_t n_layers, float* x,
                      float* const* k, float* const* v, int64_t n, const int64_t* limits, const int64_t* stops,
                      int64_t n_stops, int64_t max_position, int64_t* tokens, float* log_probs) {
    int64_t rows = s->rows, V = e->head.out, first_keys = s->pos + 1, done = 0;
    Step step = *s;
    int64_t* ids = (int64_t*)malloc(sizeof(int64_t) * 3 * rows);
    uint8_t* valid = s->valid ? (uint8_t*)malloc((size_t)(rows * (first_keys + n))) : NULL;
    float* buffer = (float*)malloc(sizeof(float) * step_floats(s, e, layers, n_layers, s->pos + n));
    if (!ids || !buffer || (s->valid && !valid)) {
        free(ids), free(valid), free(buffer);
        return -1;
    }
    int64_t *positions = ids + rows, *left = ids + 2 * rows;
    for (int64_t r = 0; r < rows; r++) ids[r] = s->ids[r], positions[r] = s->positions[r], left[r] = limits[r];
    step.ids = ids, step.positions = positions, step.valid = valid;
    int64_t going = 0;
    for (int64_t r = 0; r < rows; r++) going += left[r] > 0;
    while (done < n && going > 0 && ids_fit(e, &step, rows)) {
        int64_t keys = step.pos + 1;
        if (valid) /* [rows, keys]: each row's mask, then the keys fed since */
            for (int64_t r = 0; r < rows; r++)
                for (int64_t t = 0; t < keys; t++) valid[r * keys + t] = t < first_keys ? s->valid[r * first_keys + t] : 1;
        run_step(&step, e, layers, n_layers, x, k, v, buffer);
        for (int64_t r = 0; r < rows; r++) {
            int64_t token = greedy_choice(s->logits + r * V, V, log_probs + r * n + done);
            tokens[r * n + done] = token;
            if (left[r] > 0) {
                int stop = --left[r] == 0;
                for (int64_t i = 0; i < n_stops && !stop; i++) stop = token == stops[i];
                if (stop) left[r] = 0, going--;
            }
            ids[r] = token;
            positions[r] = positions[r] < max_position ? positions[r] + 1 : max_position;
        }
        done++;
        step.pos++;
    }
    free(ids), free(valid), free(buffer);
    return done;
}
