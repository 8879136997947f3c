// Per-position Mahalanobis distance on the CPU from a whitening factor
// stored in fp32, fp16 or int8 with one fp32 scale per row; fp32 arithmetic.
//
//   sq[b, p] = || W_p (x[b, :, p] - mu_p) ||^2
//
// At batch 1 this streams the factor once per frame with two flops per value
// read, so the time is the factor's bytes over the memory bandwidth: every
// value is read once, converted in registers and applied to up to GROUP
// images. NumPy cannot do this (it has no fused half or int8 GEMV), which
// is why this file exists; runtime/cpu_kernel.py builds it with the system
// compiler on first use, runtime/distance.py splits positions over threads.
//
// Layout (built by runtime/distance.py from the packed factor): rows in
// blocks of ROWS; block r0 stores, for k = 0 .. r0+ROWS-1, the column
// W[r0 : r0+ROWS, k] as ROWS contiguous values (zeros above the diagonal and
// past d, which is padded to a multiple of ROWS). A product is then plain
// vertical multiply-adds of a column vector by a broadcast delta_k, with no
// per-row horizontal sums (row-major packing spent most of its time in
// those: rows are only ~d/2 long). For d = 100 this stores 5824 values a
// position against 5050 packed, 15% more bytes for a loop at full width.
//
// feats (B, d, P) float32, mean (P, d) float32, factor (P, S), scale
// (P, dpad) float32 or null, sq (B, P).

#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#endif

namespace {

constexpr int ROWS = 8;   // rows per block (a multiple of 4): one AVX2 register, two NEON ones
constexpr int GROUP = 8;  // images per pass over the factor
constexpr int MAX_D = 512;

// GCC/Clang vector extensions: AVX/AVX-512 on x86, NEON on Jetson
typedef float vf __attribute__((vector_size(ROWS * 4)));
typedef uint32_t vu __attribute__((vector_size(ROWS * 4)));
typedef uint16_t vh __attribute__((vector_size(ROWS * 2)));
typedef int32_t vi __attribute__((vector_size(ROWS * 4)));
typedef int8_t vb __attribute__((vector_size(ROWS)));

inline vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
// The widening loads: one instruction each with AVX2 + F16C; elsewhere
// (NEON on Jetson) portable code: half from its bits with integer ops and
// one multiply (exact for finite values, denormals included).
#if defined(__AVX2__) && defined(__F16C__)
inline vf load(const uint16_t* p) { return (vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
inline vf load(const int8_t* p) {
    return (vf)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
}
#else
inline vf load(const uint16_t* p) {
    vh h;
    std::memcpy(&h, p, sizeof h);
    const vu u = __builtin_convertvector(h, vu);
    const vu bits = ((u & 0x7fffu) << 13) | ((u & 0x8000u) << 16);
    vf f;
    std::memcpy(&f, &bits, sizeof f);
    return f * 0x1p112f;
}
inline vf load(const int8_t* p) {
    vb b;
    std::memcpy(&b, p, sizeof b);
    return __builtin_convertvector(__builtin_convertvector(b, vi), vf);
}
#endif

inline float sum(vf v) {
    float s = 0.f;
    for (int j = 0; j < ROWS; ++j) s += v[j];
    return s;
}

// one position, nb <= GROUP images; delta (dpad, GROUP) image-minor, or (dpad) for one image
template <typename F>
void position(const F* w, const float* scale, const float* delta, int nb, int dpad, float* sq) {
    if (nb == 1) {
        float acc = 0.f;
        for (int r0 = 0; r0 < dpad; r0 += ROWS) {
            // four independent sums: one would wait on the multiply-add latency
            // every step (r0 + ROWS is a multiple of 4)
            vf y0 = {}, y1 = {}, y2 = {}, y3 = {};
            for (int k = 0; k < r0 + ROWS; k += 4, w += 4 * ROWS) {
                y0 += load(w) * delta[k];
                y1 += load(w + ROWS) * delta[k + 1];
                y2 += load(w + 2 * ROWS) * delta[k + 2];
                y3 += load(w + 3 * ROWS) * delta[k + 3];
            }
            vf y = (y0 + y1) + (y2 + y3);
            if (scale) y *= load(scale + r0);
            acc += sum(y * y);
        }
        sq[0] = acc;
        return;
    }
    float acc[GROUP] = {};
    for (int r0 = 0; r0 < dpad; r0 += ROWS) {
        vf y[GROUP] = {};
        for (int k = 0; k < r0 + ROWS; ++k, w += ROWS) {
            const vf wk = load(w);
            for (int b = 0; b < GROUP; ++b) y[b] += wk * delta[k * GROUP + b];
        }
        const vf s = scale ? load(scale + r0) : vf{} + 1.f;
        for (int b = 0; b < GROUP; ++b) acc[b] += sum((y[b] * s) * (y[b] * s));
    }
    for (int b = 0; b < nb; ++b) sq[b] = acc[b];
}

template <typename F>
void run(const float* feats, const float* mean, const F* factor, const float* scale, float* sq, int batch,
         int dim, int positions, int p0, int p1) {
    const int dpad = (dim + ROWS - 1) / ROWS * ROWS;
    const size_t stored = (size_t)dpad * (dpad + ROWS) / 2;  // sum over blocks of ROWS * (r0 + ROWS)
    alignas(64) float delta[MAX_D * GROUP];
    float out[GROUP];
    for (int p = p0; p < p1; ++p) {
        const F* w = factor + (size_t)p * stored;
        const float* sc = scale ? scale + (size_t)p * dpad : nullptr;
        for (int b0 = 0; b0 < batch; b0 += GROUP) {
            const int nb = batch - b0 < GROUP ? batch - b0 : GROUP;
            const int stride = nb == 1 ? 1 : GROUP;
            for (int k = 0; k < dpad; ++k)
                for (int b = 0; b < stride; ++b)  // padding (rows past d, images past the batch) is 0
                    delta[k * stride + b] = k < dim && b < nb
                        ? feats[((size_t)(b0 + b) * dim + k) * positions + p] - mean[(size_t)p * dim + k]
                        : 0.f;
            position(w, sc, delta, nb, dpad, out);
            for (int b = 0; b < nb; ++b) sq[(size_t)(b0 + b) * positions + p] = out[b];
        }
    }
}

}  // namespace

extern "C" {

int cfnc_rows() { return ROWS; }
int cfnc_max_dim() { return MAX_D; }

// kind: 0 fp32, 1 fp16 (as its bits), 2 int8 (scale required); positions [p0, p1) only
int cfnc_mahalanobis_sq(const float* feats, const float* mean, const void* factor, const float* scale, float* sq,
                        int kind, int batch, int dim, int positions, int p0, int p1) {
    if (dim > MAX_D) return 1;
    switch (kind) {
        case 0: run(feats, mean, (const float*)factor, nullptr, sq, batch, dim, positions, p0, p1); return 0;
        case 1: run(feats, mean, (const uint16_t*)factor, nullptr, sq, batch, dim, positions, p0, p1); return 0;
        case 2: run(feats, mean, (const int8_t*)factor, scale, sq, batch, dim, positions, p0, p1); return 0;
    }
    return 2;
}
}
