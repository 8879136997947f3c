// Per-position Mahalanobis distance from a packed whitening factor.
//
//   dist[b, p] = || W_p (x[b, :, p] - mu_p) ||,   W_p = C_p^-1 lower triangular,
//
// W_p stored packed row-major (row i at offset i(i+1)/2), in fp32, fp16, or
// int8 with one fp32 scale per row (scale (P, d); null otherwise: the scale
// factors out of the row's dot product, so it is one multiply per row), with
// arithmetic in fp32. At batch 1 the kernel is bound by the factor's bytes:
// fp16 halves them, int8 quarters them. One block per position: the block stages the deltas
// of up to MAX_B images in shared memory, then every factor element is read
// once and applied to all of them (memory-bound at batch 1, compute-bound at
// large batch). Batches beyond MAX_B are split by the host.
//
// Rows are paired (i, d-1-i) so every thread walks d+1 factor elements:
// balanced work with no warp shuffles, which keeps the kernel runnable on the
// CPU through kernels/cuda_emulation.h (threads + a barrier) for testing.
//
// Layouts: feats (B, d, P) as a NCHW feature map flattened, mean (P, d),
// factor (P, d(d+1)/2), scale (P, d) or null, dist (B, P).

#ifndef CFNC_EMULATION
#include <cuda_fp16.h>
#endif

#ifndef CFNC_THREADS
#define CFNC_THREADS 64
#endif
#ifndef CFNC_MAX_D
#define CFNC_MAX_D 256
#endif

__device__ __forceinline__ float cfnc_load(const float* p) { return *p; }
__device__ __forceinline__ float cfnc_load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float cfnc_load(const signed char* p) { return (float)*p; }

template <typename FactorT, int MAX_B>
__global__ void mahalanobis_packed(const float* __restrict__ feats, const float* __restrict__ mean,
                                   const FactorT* __restrict__ factor, const float* __restrict__ scale,
                                   float* __restrict__ dist,
                                   int batch, int dim, int positions) {
    __shared__ float delta[MAX_B * CFNC_MAX_D];
    __shared__ float partial[CFNC_THREADS * MAX_B];

    const int p = blockIdx.x;
    const int t = threadIdx.x;
    if (p >= positions) return;  // whole block exits together: no barrier is skipped by some threads only

    for (int e = t; e < batch * dim; e += blockDim.x) {
        const int b = e / dim, k = e - b * dim;
        delta[b * dim + k] = feats[((size_t)b * dim + k) * positions + p] - mean[(size_t)p * dim + k];
    }
    __syncthreads();

    float sq[MAX_B];
    for (int b = 0; b < MAX_B; ++b) sq[b] = 0.f;

    const size_t tri = (size_t)dim * (dim + 1) / 2;
    const FactorT* w = factor + (size_t)p * tri;
    const int pairs = (dim + 1) / 2;
    for (int r = t; r < pairs; r += blockDim.x) {
        for (int side = 0; side < 2; ++side) {
            const int i = side == 0 ? r : dim - 1 - r;
            if (side == 1 && i == r) break;  // odd dim: the middle row once
            const FactorT* row = w + (size_t)i * (i + 1) / 2;
            float y[MAX_B];
            for (int b = 0; b < MAX_B; ++b) y[b] = 0.f;
            for (int k = 0; k <= i; ++k) {
                const float wk = cfnc_load(row + k);
                for (int b = 0; b < MAX_B; ++b)
                    if (b < batch) y[b] += wk * delta[b * dim + k];
            }
            const float s = scale ? scale[(size_t)p * dim + i] : 1.f;
            for (int b = 0; b < MAX_B; ++b) sq[b] += (y[b] * s) * (y[b] * s);
        }
    }
    for (int b = 0; b < MAX_B; ++b) partial[t * MAX_B + b] = sq[b];
    __syncthreads();

    for (int b = t; b < batch; b += blockDim.x) {
        float s = 0.f;
        for (int j = 0; j < (int)blockDim.x; ++j) s += partial[j * MAX_B + b];
        dist[(size_t)b * positions + p] = sqrtf(s);
    }
}

#ifdef CFNC_INSTANTIATE
// Explicit instances for offline nvcc checks; CuPy instantiates by name instead.
#define CFNC_INSTANCE(T, B)                                                                                   \
    template __global__ void mahalanobis_packed<T, B>(const float*, const float*, const T*, const float*, float*, \
                                                      int, int, int);
#define CFNC_INSTANCES(T) CFNC_INSTANCE(T, 1) CFNC_INSTANCE(T, 8) CFNC_INSTANCE(T, 32)
CFNC_INSTANCES(float)
CFNC_INSTANCES(__half)
CFNC_INSTANCES(signed char)
#endif
