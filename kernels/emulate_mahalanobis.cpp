// CPU driver for kernels/mahalanobis.cu through cuda_emulation.h (tests only).
// usage: emulate_mahalanobis DIR  -- reads DIR/{meta.txt,feats.f32,mean.f32,factor.bin[,scale.f32]},
// writes DIR/dist.f32; meta.txt: batch dim positions kind(0 fp32, 1 fp16, 2 int8) max_b
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
                const float* scale, std::vector<float>& dist, int batch, int dim, int positions) {
    // the host side of the CuPy wrapper: split the batch into MAX_B chunks
    for (int b0 = 0; b0 < batch; b0 += MAX_B) {
        const int nb = batch - b0 < MAX_B ? batch - b0 : MAX_B;
        const float* f = feats.data() + (size_t)b0 * dim * positions;
        float* out = dist.data() + (size_t)b0 * positions;
        cfnc_launch(positions, CFNC_THREADS, [&] {
            mahalanobis_packed<F, MAX_B>(f, mean.data(), factor.data(), scale, out, nb, dim, positions);
        });
    }
}

template <typename F>
static void dispatch(const std::vector<F>& factor, const float* scale, const std::vector<float>& feats,
                     const std::vector<float>& mean, std::vector<float>& dist, int batch, int dim, int positions,
                     int max_b) {
    if (max_b == 1) run<F, 1>(feats, mean, factor, scale, dist, batch, dim, positions);
    else run<F, 8>(feats, mean, factor, scale, dist, batch, dim, positions);
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::string dir = argv[1];
    int batch, dim, positions, kind, max_b;
    std::ifstream meta(dir + "/meta.txt");
    meta >> batch >> dim >> positions >> kind >> max_b;
    const auto feats = read_all<float>(dir + "/feats.f32");
    const auto mean = read_all<float>(dir + "/mean.f32");
    std::vector<float> dist((size_t)batch * positions);
    if (kind == 0) dispatch(read_all<float>(dir + "/factor.bin"), nullptr, feats, mean, dist, batch, dim, positions, max_b);
    if (kind == 1) dispatch(read_all<__half>(dir + "/factor.bin"), nullptr, feats, mean, dist, batch, dim, positions, max_b);
    if (kind == 2) {
        const auto scale = read_all<float>(dir + "/scale.f32");
        dispatch(read_all<signed char>(dir + "/factor.bin"), scale.data(), feats, mean, dist, batch, dim, positions, max_b);
    }
    std::ofstream out(dir + "/dist.f32", std::ios::binary);
    out.write(reinterpret_cast<const char*>(dist.data()), (std::streamsize)(dist.size() * sizeof(float)));
    return 0;
}
