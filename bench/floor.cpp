// floor.cpp -- "the floor": the cost of a model in a bare libtorch process
// (plain torch::jit::load, no daemon, no mmap), which the daemon's benchmarks
// are compared against. Prints one JSON object: memory from /proc/self/status
// at start, after load and after one forward, and the median forward latency.
//
//   floor MODEL.pt [--iters N] [--shape 1,4] [--dtype float32]
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

// The memory fields of /proc/self/status, in kB, as a JSON object.
static std::string memory_json() {
    std::ifstream status("/proc/self/status");
    std::string line, out = "{";
    for (const char *key : {"VmRSS", "RssAnon", "RssFile", "VmHWM"}) {
        status.clear();
        status.seekg(0);
        while (std::getline(status, line)) {
            if (line.compare(0, strlen(key) + 1, std::string(key) + ":") != 0) continue;
            if (out.size() > 1) out += ", ";
            out += "\"" + std::string(key) + "_kb\": " + std::to_string(strtol(line.c_str() + strlen(key) + 1, nullptr, 10));
        }
    }
    return out + "}";
}

static at::ScalarType parse_dtype(const std::string &s) {
    if (s == "float32") return at::kFloat;
    if (s == "float64") return at::kDouble;
    if (s == "float16") return at::kHalf;
    if (s == "int64") return at::kLong;
    if (s == "int32") return at::kInt;
    if (s == "uint8") return at::kByte;
    if (s == "bool") return at::kBool;
    fprintf(stderr, "floor: unknown dtype %s\n", s.c_str());
    exit(1);
}

// A random input: normal for floating types, small non-negative integers
// otherwise (valid indices for most embedding tables).
static at::Tensor random_input(const std::vector<int64_t> &shape, at::ScalarType dt) {
    if (at::isFloatingType(dt)) return torch::randn(shape).to(dt);
    if (dt == at::kBool) return torch::randint(0, 2, shape).to(dt);
    return torch::randint(0, 10, shape).to(dt);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor MODEL.pt [--iters N] [--shape 1,4] [--dtype float32]\n");
        return 1;
    }
    std::string path = argv[1], dtype = "float32";
    std::vector<int64_t> shape = {1, 4};
    int iters = 100;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string opt = argv[i], val = argv[i + 1];
        if (opt == "--iters") {
            iters = std::max(1, atoi(val.c_str()));
        } else if (opt == "--dtype") {
            dtype = val;
        } else if (opt == "--shape") {
            shape.clear();
            std::stringstream ss(val);
            for (std::string d; std::getline(ss, d, ',');) shape.push_back(std::stoll(d));
        } else {
            fprintf(stderr, "floor: unknown option %s\n", opt.c_str());
            return 1;
        }
    }
    std::string mem_start = memory_json();
    try {
        torch::jit::Module m = torch::jit::load(path);
        m.eval();
        std::string mem_load = memory_json();

        c10::InferenceMode guard;
        at::Tensor x = random_input(shape, parse_dtype(dtype));
        m.forward({x});
        std::string mem_forward = memory_json();

        std::vector<double> us;
        for (int i = 0; i < iters; i++) {
            auto t0 = std::chrono::steady_clock::now();
            m.forward({x});
            us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(us.begin(), us.end());
        double median = us.size() % 2 ? us[us.size() / 2] : (us[us.size() / 2 - 1] + us[us.size() / 2]) / 2;
        printf("{\"model\": \"%s\", \"iters\": %d, \"start\": %s, \"after_load\": %s, "
               "\"after_forward\": %s, \"median_forward_us\": %.1f}\n",
               path.c_str(), iters, mem_start.c_str(), mem_load.c_str(), mem_forward.c_str(), median);
    } catch (const c10::Error &e) {
        std::string msg = e.what_without_backtrace();
        fprintf(stderr, "floor: %s\n", msg.substr(0, msg.find('\n')).c_str());
        return 1;
    }
    return 0;
}
