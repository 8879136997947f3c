// Runs CUDA kernel source on the CPU, for tests on machines without a GPU.
//
// Blocks run one after another; the threads of a block are host threads and
// __syncthreads is a barrier across them. Because only one block is alive at
// a time, a static variable is exactly "one copy per block": that is what
// __shared__ becomes. Supports what kernels/*.cu use, nothing more.
#pragma once
#define CFNC_EMULATION 1

#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* cfnc_block_barrier = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __syncthreads() cfnc_block_barrier->arrive_and_wait()

// IEEE half storage, converted exactly like __half2float.
struct __half {
    uint16_t bits;
};
inline float __half2float(__half h) {
    const uint32_t sign = (h.bits & 0x8000u) << 16, exp = (h.bits >> 10) & 0x1f, man = h.bits & 0x3ff;
    float f;
    if (exp == 0) {
        f = std::ldexp((float)man, -24);
    } else if (exp == 31) {
        f = man ? NAN : INFINITY;
    } else {
        f = std::ldexp((float)(man | 0x400), (int)exp - 25);
    }
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u |= sign;
    std::memcpy(&f, &u, 4);
    return f;
}

// kernel<<<grid, block>>>(args...) becomes cfnc_launch(grid, block, [&] { kernel(args...); })
inline void cfnc_launch(unsigned grid, unsigned block, const std::function<void()>& body) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        std::barrier<> bar((std::ptrdiff_t)block);
        cfnc_block_barrier = &bar;
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([&, b, t] {
                blockIdx = {b, 1, 1};
                threadIdx = {t, 1, 1};
                body();
            });
        for (auto& th : threads) th.join();
    }
}
