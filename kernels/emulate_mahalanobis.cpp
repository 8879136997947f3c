// CPU driver for kernels/mahalanobis.cu through cuda_emulation.h (tests only).
// usage: emulate_mahalanobis DIR  -- reads DIR/{meta.txt,feats.f32,mean.f32,factor.bin}, writes DIR/dist.f32
#include "cuda_emulation.h"
#include "mahalanobis.cu"

#include <cstdio>
#include <fstream>
#include <string>

template <typename T>
static std::vector<T> read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    const auto n = (size_t)f.tellg();
    std::vector<T> v(n / sizeof(T));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(v.data()), (std::streamsize)n);
    return v;
}

template <typename F, int MAX_B>
static void run(const std::vector<float>& feats, const std::vector<float>& mean, const std::vector<F>& factor,
                std::vector<float>& dist, int batch, int dim, int positions) {
    // the host side of the CuPy wrapper: split the batch into MAX_B chunks
    for (int b0 = 0; b0 < batch; b0 += MAX_B) {
        const int nb = batch - b0 < MAX_B ? batch - b0 : MAX_B;
        const float* f = feats.data() + (size_t)b0 * dim * positions;
        float* out = dist.data() + (size_t)b0 * positions;
        cfnc_launch(positions, CFNC_THREADS, [&] {
            mahalanobis_packed<F, MAX_B>(f, mean.data(), factor.data(), out, nb, dim, positions);
        });
    }
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::string dir = argv[1];
    int batch, dim, positions, half, max_b;
    std::ifstream meta(dir + "/meta.txt");
    meta >> batch >> dim >> positions >> half >> max_b;
    const auto feats = read_all<float>(dir + "/feats.f32");
    const auto mean = read_all<float>(dir + "/mean.f32");
    std::vector<float> dist((size_t)batch * positions);
    if (half) {
        const auto factor = read_all<__half>(dir + "/factor.bin");
        if (max_b == 1) run<__half, 1>(feats, mean, factor, dist, batch, dim, positions);
        else run<__half, 8>(feats, mean, factor, dist, batch, dim, positions);
    } else {
        const auto factor = read_all<float>(dir + "/factor.bin");
        if (max_b == 1) run<float, 1>(feats, mean, factor, dist, batch, dim, positions);
        else run<float, 8>(feats, mean, factor, dist, batch, dim, positions);
    }
    std::ofstream out(dir + "/dist.f32", std::ios::binary);
    out.write(reinterpret_cast<const char*>(dist.data()), (std::streamsize)(dist.size() * sizeof(float)));
    return 0;
}
