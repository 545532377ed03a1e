// forward_floor.cpp -- the forward alone, in-process: what one forward of a
// model costs in a bare libtorch program with inferd's runtime settings
// (intra-op threads, one inter-op thread, the JIT executor mode, inference
// mode, torch::jit::load, eval). Derived from bench/floor.cpp, which reports
// memory; this one reports latency: median, p99, mean, and the first calls.
// Prints one JSON object.
//
//   forward_floor MODEL.pt [--shape 1,4] [--iters N] [--threads N]
//                 [--jit-profiling 0|1] [--seconds S]
#include <torch/script.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

using clk = std::chrono::steady_clock;

static double us_since(clk::time_point t0) {
    return std::chrono::duration<double, std::micro>(clk::now() - t0).count();
}

static double quantile(const std::vector<double> &sorted, double q) {
    if (sorted.empty()) return 0;
    double pos = q * (double)(sorted.size() - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    return i + 1 < sorted.size() ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i];
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr,
                "usage: forward_floor MODEL.pt [--shape 1,4] [--iters N] [--threads N] "
                "[--jit-profiling 0|1] [--seconds S]\n");
        return 2;
    }
    std::string path = argv[1];
    std::vector<int64_t> shape = {1, 4};
    int iters = 2000, threads = 0, profiling = 0;
    double seconds = 3.0;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string opt = argv[i], val = argv[i + 1];
        if (opt == "--iters") {
            iters = std::max(1, atoi(val.c_str()));
        } else if (opt == "--threads") {
            threads = atoi(val.c_str());
        } else if (opt == "--jit-profiling") {
            profiling = atoi(val.c_str()) != 0;
        } else if (opt == "--seconds") {
            seconds = atof(val.c_str());
        } else if (opt == "--shape") {
            shape.clear();
            std::stringstream ss(val);
            for (std::string d; std::getline(ss, d, ',');) shape.push_back(std::stoll(d));
        } else {
            fprintf(stderr, "forward_floor: unknown option %s\n", opt.c_str());
            return 2;
        }
    }
    try {
        // The same calls as api_init() in src/backend_torch.cpp.
        at::set_num_interop_threads(1);
        if (threads > 0) at::set_num_threads(threads);
        torch::jit::getProfilingMode() = profiling != 0;
        torch::jit::getExecutorMode() = profiling != 0;

        auto t0 = clk::now();
        torch::jit::Module m = torch::jit::load(path);
        m.eval();
        double load_us = us_since(t0);

        c10::InferenceMode guard;
        torch::manual_seed(0);
        at::Tensor x = torch::randn(shape);
        std::vector<double> first;
        for (int i = 0; i < 3; i++) {
            t0 = clk::now();
            m.forward({x});
            first.push_back(us_since(t0));
        }
        // iters forwards, or fewer if they would take longer than seconds.
        std::vector<double> us;
        auto start = clk::now();
        for (int i = 0; i < iters; i++) {
            t0 = clk::now();
            m.forward({x});
            us.push_back(us_since(t0));
            if (i >= 50 && us_since(start) > seconds * 1e6) break;
        }
        double sum = 0;
        for (double v : us) sum += v;
        std::sort(us.begin(), us.end());
        std::string shape_text;
        for (size_t i = 0; i < shape.size(); i++)
            shape_text += (i ? "," : "") + std::to_string(shape[i]);
        printf("{\"model\": \"%s\", \"shape\": \"%s\", \"threads\": %d, \"jit_profiling\": %d, "
               "\"iters\": %zu, \"load_ms\": %.1f, \"first_us\": [%.1f, %.1f, %.1f], "
               "\"median_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f}\n",
               path.c_str(), shape_text.c_str(), at::get_num_threads(), profiling, us.size(),
               load_us / 1000, first[0], first[1], first[2], quantile(us, 0.5),
               quantile(us, 0.99), sum / (double)us.size());
    } catch (const c10::Error &e) {
        std::string msg = e.what_without_backtrace();
        fprintf(stderr, "forward_floor: %s\n", msg.substr(0, msg.find('\n')).c_str());
        return 1;
    }
    return 0;
}
