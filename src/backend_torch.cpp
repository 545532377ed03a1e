// backend_torch.cpp -- the libtorch shim: implements the C ABI of
// include/inferd/backend.h on top of libtorch so that the daemon never links
// or sees C++. Built as build/libinferd_torch.so and dlopened by the daemon.
//
// The one non-obvious part is the zero-copy load (opts->use_mmap): the archive
// is mapped MAP_PRIVATE, torch::jit::load() reads it through our own
// ReadAdapterInterface which *skips* copying tensor records into the heap
// buffers libtorch allocates for them, and after the load every storage that
// owns such a buffer is repointed into the mapping. The untouched heap buffers
// never become resident, so the weights are paid for once, as page cache.

#include <inferd/backend.h>

#include <ATen/Parallel.h>
#include <c10/util/ThreadLocalDebugInfo.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#include <torch/version.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <unordered_set>

using torch::jit::IValue;

namespace {

// ---------------------------------------------------------------- errors

// Internal failures carry their ABI code; entry points turn them into codes.
struct ShimError {
    int code;
    std::string msg;
};

[[noreturn]] __attribute__((format(printf, 2, 3))) void fail(int code, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw ShimError{code, buf};
}

void put_err(char *err, size_t errlen, const std::string &msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg.c_str());
}

// libtorch messages are multi-line: TorchScript interpreter errors start with
// "The following operation failed..." and a traceback, and the real error is
// on a later "RuntimeError: ..." line. Return that line if there is one, else
// the first non-empty line; never a stack trace.
std::string one_line(const std::string &msg) {
    std::string first;
    for (size_t start = 0, nl; start < msg.size(); start = nl + 1) {
        if ((nl = msg.find('\n', start)) == std::string::npos) nl = msg.size();
        size_t b = msg.find_first_not_of(" \t\r", start);
        if (b >= nl) continue;
        std::string l = msg.substr(b, nl - b);
        if (l.rfind("RuntimeError: ", 0) == 0) return l.substr(14);
        size_t colon = l.find(": "); // "builtins.ValueError: ..." and the like
        if (colon != std::string::npos && colon > 5 && l.find(' ') > colon &&
            (l.compare(colon - 5, 5, "Error") == 0 || l.compare(colon - 5, 5, "ption") == 0))
            return l;
        if (first.empty()) first = l;
    }
    return first.empty() ? "unknown libtorch error" : first;
}

// Runs an entry point body; no exception leaves the shim.
template <class F>
int guarded(char *err, size_t errlen, F &&body) {
    try {
        return body();
    } catch (const ShimError &e) {
        put_err(err, errlen, e.msg);
        return e.code;
    } catch (const c10::Error &e) {
        put_err(err, errlen, one_line(e.what_without_backtrace()));
        return BACKEND_EINTERNAL;
    } catch (const std::bad_alloc &) {
        put_err(err, errlen, "out of memory");
        return BACKEND_EINTERNAL;
    } catch (const std::exception &e) {
        put_err(err, errlen, one_line(e.what()));
        return BACKEND_EINTERNAL;
    } catch (...) {
        put_err(err, errlen, "unknown C++ exception in the libtorch backend");
        return BACKEND_EINTERNAL;
    }
}

// ---------------------------------------------------------------- file map

// A read-only view of the model file for the zip index, and, with use_mmap,
// the backing store of the weights. MAP_PRIVATE + PROT_WRITE: a model that
// writes to its own buffers gets copy-on-write pages and never the file.
struct FileMap {
    unsigned char *base = nullptr;
    size_t len = 0;
    ~FileMap() {
        if (base) munmap(base, len);
    }
};

std::shared_ptr<FileMap> map_model_file(const std::string &path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) fail(BACKEND_ENOENT, "model file not found: %s", path.c_str());
        fail(BACKEND_EINTERNAL, "cannot stat %s: %s", path.c_str(), strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) fail(BACKEND_ENOTSCRIPT, "%s is a directory, not a TorchScript archive", path.c_str());
    if (!S_ISREG(st.st_mode)) fail(BACKEND_ENOTSCRIPT, "%s is not a regular file", path.c_str());
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) fail(BACKEND_ENOENT, "model file not found: %s", path.c_str());
        fail(BACKEND_EINTERNAL, "cannot open %s: %s", path.c_str(), strerror(errno));
    }
    auto map = std::make_shared<FileMap>();
    if (st.st_size > 0) {
        void *p = mmap(nullptr, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        int e = errno;
        close(fd);
        if (p == MAP_FAILED) fail(BACKEND_EINTERNAL, "cannot map %s: %s", path.c_str(), strerror(e));
        map->base = static_cast<unsigned char *>(p);
        map->len = (size_t)st.st_size;
    } else {
        close(fd);
    }
    return map;
}

// ---------------------------------------------------------------- zip index

// libtorch does not expose record sizes or compression methods without
// reading the records, so we read the central directory ourselves.
struct ZipEntry {
    std::string name;
    uint64_t offset = 0; // of the data, past the local header
    uint64_t size = 0;   // uncompressed
    uint64_t comp_size = 0;
    uint16_t method = 0; // 0 = stored
};

uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
uint32_t rd32(const unsigned char *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

// ZIP64 extra field: the 64-bit values of the saturated 32-bit fields, in order.
void apply_zip64_extra(const unsigned char *x, size_t xlen, ZipEntry &e, uint64_t &lho) {
    while (xlen >= 4) {
        uint16_t id = rd16(x), sz = rd16(x + 2);
        if (sz > xlen - 4) return;
        if (id == 1) {
            const unsigned char *f = x + 4, *fe = f + sz;
            for (uint64_t *v : {&e.size, &e.comp_size, &lho}) {
                if (*v != 0xFFFFFFFFu) continue;
                if (fe - f < 8) return;
                *v = rd64(f);
                f += 8;
            }
        }
        x += 4 + sz;
        xlen -= 4 + sz;
    }
}

// Returns "" and fills out, or says why this is not a readable zip.
std::string read_zip_index(const unsigned char *b, size_t len, std::vector<ZipEntry> &out) {
    if (len < 22) return "too short for a zip archive";
    size_t lowest = len > 22 + 65535 ? len - 22 - 65535 : 0, eocd = SIZE_MAX;
    for (size_t i = len - 22 + 1; i-- > lowest;)
        if (rd32(b + i) == 0x06054b50) { eocd = i; break; }
    if (eocd == SIZE_MAX) return "no zip end-of-central-directory record; the file is truncated or corrupt";
    uint64_t count = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
    if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < 20 || rd32(b + eocd - 20) != 0x07064b50) return "bad ZIP64 locator";
        uint64_t z = rd64(b + eocd - 12);
        if (len < 56 || z > len - 56 || rd32(b + z) != 0x06064b50) return "bad ZIP64 end record";
        count = rd64(b + z + 32);
        cd_size = rd64(b + z + 40);
        cd_off = rd64(b + z + 48);
    }
    if (cd_off > len || cd_size > len - cd_off) return "central directory out of bounds; the file is truncated";
    const unsigned char *p = b + cd_off, *end = p + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(p) != 0x02014b50) return "corrupt central directory";
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) < 46 + nlen + xlen + clen) return "corrupt central directory";
        ZipEntry e;
        e.method = rd16(p + 10);
        e.comp_size = rd32(p + 20);
        e.size = rd32(p + 24);
        uint64_t lho = rd32(p + 42);
        e.name.assign(reinterpret_cast<const char *>(p + 46), nlen);
        apply_zip64_extra(p + 46 + nlen, xlen, e, lho);
        if (len < 30 || lho > len - 30 || rd32(b + lho) != 0x04034b50) return "corrupt local header of " + e.name;
        e.offset = lho + 30 + rd16(b + lho + 26) + rd16(b + lho + 28);
        if (e.offset > len || e.comp_size > len - e.offset) return "record " + e.name + " out of bounds; the file is truncated";
        out.push_back(std::move(e));
        p += 46 + nlen + xlen + clen;
    }
    return "";
}

// ---------------------------------------------------------------- archive

const char kExportHint[] = "export the model with torch.jit.script or torch.jit.trace and .save() it";

struct Archive {
    std::shared_ptr<FileMap> map;
    std::vector<ZipEntry> tensors; // <prefix>/data/N and <prefix>/constants/N
    uint64_t weights_bytes = 0;
};

bool is_tensor_record(const std::string &name, const std::string &prefix) {
    for (const char *dir : {"/data/", "/constants/"}) {
        std::string d = prefix + dir;
        if (name.size() > d.size() && name.compare(0, d.size(), d) == 0 &&
            name.find('/', d.size()) == std::string::npos)
            return true;
    }
    return false;
}

// Maps the file and tells a TorchScript archive from the usual mistakes
// before libtorch gets to produce an obscure message about them.
Archive open_archive(const std::string &path) {
    Archive a;
    a.map = map_model_file(path);
    const unsigned char *b = a.map->base;
    if (a.map->len < 4 || rd32(b) != 0x04034b50)
        fail(BACKEND_ENOTSCRIPT, "%s is not a TorchScript archive (not a zip file); %s", path.c_str(), kExportHint);
    std::vector<ZipEntry> entries;
    std::string why = read_zip_index(b, a.map->len, entries);
    if (!why.empty()) fail(BACKEND_ENOTSCRIPT, "%s is not a readable TorchScript archive: %s", path.c_str(), why.c_str());
    if (entries.empty()) fail(BACKEND_ENOTSCRIPT, "%s is an empty zip file, not a TorchScript archive", path.c_str());
    std::string prefix = entries[0].name.substr(0, entries[0].name.find('/'));
    bool data_pkl = false, code = false, constants = false;
    for (const ZipEntry &e : entries) {
        data_pkl |= e.name == prefix + "/data.pkl";
        constants |= e.name == prefix + "/constants.pkl";
        code |= e.name.compare(0, prefix.size() + 6, prefix + "/code/") == 0;
        if (is_tensor_record(e.name, prefix)) {
            a.tensors.push_back(e);
            a.weights_bytes += e.size;
        }
    }
    if (!data_pkl) fail(BACKEND_ENOTSCRIPT, "%s is a zip file but not a TorchScript archive (no data.pkl); %s", path.c_str(), kExportHint);
    if (!code && !constants) fail(BACKEND_ENOTSCRIPT, "this looks like a torch.save() checkpoint; %s", kExportHint);
    return a;
}

// ---------------------------------------------------------------- mmap load

// State of one zero-copy load. Installed as the thread's memory-reporting
// hook (the profiler's, thread local) it sees every CPU allocation and free
// libtorch makes during the load: we only skip the copy into a buffer we saw
// allocated with the right size, and forget a skipped buffer as soon as it
// is freed, so nothing is ever written to or mapped for a dead buffer.
struct LoadSession final : c10::MemoryReportingInfoBase {
    const Archive &archive;
    std::unordered_map<uint64_t, size_t> skippable; // record offset -> index
    std::unordered_map<void *, int64_t> live;       // CPU allocations
    std::unordered_map<void *, size_t> unfilled;    // skipped buffer -> index
    std::vector<bool> mapped;
    int unaligned_records = 0;
    std::mutex lock; // in case libtorch frees from a worker thread it
                     // passed its thread-local state to

    LoadSession(const Archive &a, bool allow_skip) : archive(a), mapped(a.tensors.size()) {
        for (size_t i = 0; i < a.tensors.size(); i++) {
            const ZipEntry &e = a.tensors[i];
            // The writer aligns records to 64; anything else (re-zipped
            // archives) keeps a heap copy, as do compressed records.
            if (e.method != 0 || e.offset % 64 != 0) unaligned_records++;
            else if (allow_skip && e.size > 0) skippable.emplace(e.offset, i);
        }
    }
    void reportMemoryUsage(void *p, int64_t size, int64_t, int64_t, c10::Device d) override {
        if (!d.is_cpu()) return;
        std::lock_guard<std::mutex> hold(lock);
        if (size > 0) {
            live[p] = size;
        } else {
            live.erase(p);
            unfilled.erase(p);
        }
    }
    bool memoryProfilingEnabled() const override { return true; }

    // miniz reads a stored record with one read of exactly its size into the
    // buffer libtorch just allocated for it; that is the copy we skip.
    bool try_skip(uint64_t pos, void *buf, size_t n) {
        std::lock_guard<std::mutex> hold(lock);
        auto rec = skippable.find(pos);
        if (rec == skippable.end() || archive.tensors[rec->second].size != n) return false;
        auto alloc = live.find(buf);
        if (alloc == live.end() || (uint64_t)alloc->second < n) return false;
        unfilled[buf] = rec->second;
        return true;
    }
};

class MapReader final : public caffe2::serialize::ReadAdapterInterface {
  public:
    MapReader(const FileMap &map, LoadSession *s) : map_(map), session_(s) {}
    size_t size() const override { return map_.len; }
    size_t read(uint64_t pos, void *buf, size_t n, const char *) const override {
        if (pos >= map_.len) return 0;
        if (n > map_.len - pos) n = map_.len - pos;
        if (session_ && session_->try_skip(pos, buf, n)) return n;
        memcpy(buf, map_.base + pos, n);
        return n;
    }
    void detach() { session_ = nullptr; }

  private:
    const FileMap &map_;
    LoadSession *session_;
};

// Collects every storage a module can reach: parameters, buffers and other
// attributes of all submodules, tensors inside lists/dicts/tuples/objects,
// and tensor constants baked into the code of every method and function.
class StorageCollector {
  public:
    std::unordered_map<c10::StorageImpl *, c10::Storage> storages;

    void module(const torch::jit::Module &m) {
        value(m._ivalue());
        for (torch::jit::Function *f : m._ivalue()->compilation_unit()->get_functions()) function(f);
    }

  private:
    std::unordered_set<const void *> seen_;

    void tensor(const at::Tensor &t) {
        if (!t.defined()) return;
        if (t.is_sparse()) {
            tensor(t._indices());
            tensor(t._values());
        } else if (t.has_storage()) {
            c10::Storage s = t.storage();
            storages.emplace(s.unsafeGetStorageImpl(), s);
        }
    }
    void value(const IValue &v) {
        if (v.isTensor()) {
            tensor(v.toTensor());
        } else if (v.isList()) {
            for (const IValue &e : v.toListRef()) value(e);
        } else if (v.isTuple()) {
            for (const IValue &e : v.toTupleRef().elements()) value(e);
        } else if (v.isGenericDict()) {
            for (const auto &kv : v.toGenericDict()) {
                value(kv.key());
                value(kv.value());
            }
        } else if (v.isObject()) {
            auto obj = v.toObject();
            if (!seen_.insert(obj.get()).second) return;
            for (const IValue &slot : obj->slots()) value(slot);
            for (torch::jit::Function *f : obj->type()->methods()) function(f);
        }
    }
    void function(torch::jit::Function *f) {
        if (!f || !f->isGraphFunction() || !seen_.insert(f).second) return;
        block(torch::jit::toGraphFunction(*f).graph()->block());
    }
    void block(torch::jit::Block *b) {
        using torch::jit::AttributeKind;
        for (torch::jit::Node *n : b->nodes()) {
            if (n->kind() == c10::prim::Constant && n->hasAttribute(c10::attr::value)) {
                AttributeKind k = n->kindOf(c10::attr::value);
                if (k == AttributeKind::t) tensor(n->t(c10::attr::value));
                else if (k == AttributeKind::ts) for (const at::Tensor &t : n->ts(c10::attr::value)) tensor(t);
                else if (k == AttributeKind::ival) value(n->ival(c10::attr::value));
            }
            for (torch::jit::Block *sub : n->blocks()) block(sub);
        }
    }
};

void release_map_ref(void *ctx) { delete static_cast<std::shared_ptr<FileMap> *>(ctx); }

// Points every storage that owns an unfilled buffer into the mapping (which
// frees the untouched buffer), then fills whatever no storage claimed.
void rebind_storages(const torch::jit::Module &m, const Archive &a, LoadSession &s) {
    StorageCollector c;
    c.module(m);
    for (auto &kv : c.storages) {
        c10::StorageImpl *impl = kv.first;
        auto it = s.unfilled.find(impl->data());
        if (it == s.unfilled.end()) continue;
        const ZipEntry &e = a.tensors[it->second];
        if (impl->nbytes() > e.size) continue; // malformed; filled below
        auto *ref = new std::shared_ptr<FileMap>(a.map);
        s.mapped[it->second] = true;
        s.unfilled.erase(it);
        impl->set_data_ptr_noswap(c10::DataPtr(a.map->base + e.offset, ref, release_map_ref, c10::Device(c10::DeviceType::CPU)));
    }
    // A tensor we could not reach must still see its data. (Buffers libtorch
    // freed during the load have already left `unfilled`.)
    for (auto &kv : s.unfilled) {
        const ZipEntry &e = a.tensors[kv.second];
        memcpy(kv.first, a.map->base + e.offset, e.size);
    }
    s.unfilled.clear();
}

// Code that runs during the load (__setstate__, custom C++ classes such as
// quantized packed params) may read tensor data before we could fill it, so
// such archives get an ordinary load.
bool reads_tensors_during_load(const FileMap &map) {
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<MapReader>(map, nullptr));
    for (const std::string &name : reader.getAllRecords()) {
        bool pickle = name == "data.pkl" || name == "constants.pkl";
        bool code = name.rfind("code/", 0) == 0 && name.size() > 3 && name.compare(name.size() - 3, 3, ".py") == 0;
        if (!pickle && !code) continue;
        auto rec = reader.getRecord(name);
        std::string text(static_cast<const char *>(std::get<0>(rec).get()), std::get<1>(rec));
        if (text.find(pickle ? "torch.classes" : "__setstate__") != std::string::npos) return true;
    }
    return false;
}

struct Loaded {
    torch::jit::Module module;
    uint64_t mapped_bytes = 0;
    int unaligned_records = 0;
};

// The zero-copy load. With allow_skip false it is an ordinary load that
// merely reads through the mapping (every record copied).
Loaded load_mapped(const Archive &a, bool allow_skip) {
    auto session = std::make_shared<LoadSession>(a, allow_skip);
    Loaded out;
    {
        // Frees must stay visible until rebind_storages has run.
        c10::DebugInfoGuard track(c10::DebugInfoKind::PROFILER_STATE, session);
        auto reader = std::make_shared<MapReader>(*a.map, session.get());
        out.module = torch::jit::load(reader);
        reader->detach();
        rebind_storages(out.module, a, *session);
    }
    for (size_t i = 0; i < a.tensors.size(); i++)
        if (session->mapped[i]) out.mapped_bytes += a.tensors[i].size;
    out.unaligned_records = session->unaligned_records;
    return out;
}

// The use_mmap load: zero-copy where that is safe, else copying through the
// mapping. Returns whether the weights are served from the mapping.
bool load_with_mapping(const Archive &a, Loaded &l) {
    bool skip = !reads_tensors_during_load(*a.map);
    if (skip) {
        try {
            l = load_mapped(a, true);
            return true;
        } catch (const c10::Error &e) {
            // This libtorch does not check CRCs of records (miniz built with
            // MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS); a build that does would
            // reject the skipped records. Then we copy like everyone else.
            if (!strstr(e.what_without_backtrace(), "CRC")) throw;
        }
    }
    l = load_mapped(a, false);
    return false;
}

// ---------------------------------------------------------------- tensors

// Indexed by dtype_t.
const at::ScalarType kScalarTypes[DTYPE_COUNT] = {at::kFloat, at::kDouble, at::kHalf, at::kLong, at::kInt,
                                                  at::kShort, at::kChar,   at::kByte, at::kBool};

at::ScalarType to_scalar_type(dtype_t dt) {
    if ((unsigned)dt >= DTYPE_COUNT) fail(BACKEND_EINPUT, "unknown input dtype %d", (int)dt);
    return kScalarTypes[dt];
}

bool from_scalar_type(at::ScalarType st, dtype_t &dt) {
    for (int d = 0; d < DTYPE_COUNT; d++)
        if (kScalarTypes[d] == st) return dt = (dtype_t)d, true;
    return false;
}

// How a forward() argument is passed: a tensor, or a number taken from a
// one-element tensor (the daemon only sends tensors).
enum class ArgKind { Tensor, Int, Float, Bool };

ArgKind arg_kind(const c10::TypePtr &t) {
    switch (t->kind()) {
    case c10::TypeKind::IntType: return ArgKind::Int;
    case c10::TypeKind::FloatType: return ArgKind::Float;
    case c10::TypeKind::BoolType: return ArgKind::Bool;
    default: return ArgKind::Tensor;
    }
}

IValue to_input(const backend_tensor &t, ArgKind kind, int i) {
    at::ScalarType st = to_scalar_type(t.dtype);
    if (t.ndim < 0 || t.ndim > BACKEND_MAX_DIMS) fail(BACKEND_EINPUT, "input %d: bad rank %d", i, t.ndim);
    std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
    uint64_t numel = 1, nbytes;
    for (int64_t d : shape)
        if (d < 0 || __builtin_mul_overflow(numel, (uint64_t)d, &numel))
            fail(BACKEND_EINPUT, "input %d: bad dimension %lld", i, (long long)d);
    if (__builtin_mul_overflow(numel, c10::elementSize(st), &nbytes) || nbytes != t.nbytes)
        fail(BACKEND_EINPUT, "input %d: %zu bytes do not match its shape and dtype", i, t.nbytes);
    auto options = at::TensorOptions().dtype(st);
    at::Tensor x = numel == 0 ? at::empty(shape, options)
                              : torch::from_blob(const_cast<void *>(t.data), shape, options);
    if (kind == ArgKind::Tensor) return x;
    if (numel != 1) fail(BACKEND_EINPUT, "input %d: forward() takes a number here, not a tensor of %lu elements", i, (unsigned long)numel);
    if (kind == ArgKind::Float) return x.item<double>();
    if (!at::isIntegralType(st, /*includeBool=*/true)) fail(BACKEND_EINPUT, "input %d: forward() takes an %s here, got a floating-point value", i, kind == ArgKind::Int ? "int" : "bool");
    if (kind == ArgKind::Int) return x.item<int64_t>();
    return x.item<int64_t>() != 0;
}

// The outputs of one forward, flattened; frees what it holds unless released.
class Outputs {
  public:
    ~Outputs() {
        for (backend_tensor &t : v_) free(t.data);
    }
    void flatten(const IValue &v, const std::string &name) {
        if (v.isTensor()) {
            add(v.toTensor(), name, false);
        } else if (v.isTuple()) {
            for (const IValue &e : v.toTupleRef().elements()) flatten(e, name);
        } else if (v.isList()) {
            for (const IValue &e : v.toListRef()) flatten(e, name);
        } else if (v.isGenericDict()) {
            for (const auto &kv : v.toGenericDict()) {
                if (!kv.key().isString()) fail(BACKEND_EUNSUPPORTED, "the model returned a dict with %s keys; only str keys are supported", kv.key().tagKind().c_str());
                const std::string &key = kv.key().toStringRef();
                if (key.size() >= BACKEND_NAME_LEN) fail(BACKEND_EUNSUPPORTED, "output key '%.40s...' is longer than %d bytes", key.c_str(), BACKEND_NAME_LEN - 1);
                flatten(kv.value(), key);
            }
        } else if (v.isInt()) {
            add(at::scalar_tensor(v.toInt(), at::kLong), name, true);
        } else if (v.isDouble()) {
            add(at::scalar_tensor(v.toDouble(), at::kDouble), name, true);
        } else if (v.isBool()) {
            add(at::scalar_tensor(v.toBool(), at::kBool), name, true);
        } else {
            fail(BACKEND_EUNSUPPORTED, "the model returned a %s, which inferd cannot return (supported: tensors, tuples, lists, str-keyed dicts, int, float, bool)", v.tagKind().c_str());
        }
    }
    void release(backend_tensor **out, int *nout) {
        auto *arr = static_cast<backend_tensor *>(calloc(v_.empty() ? 1 : v_.size(), sizeof(backend_tensor)));
        if (!arr) throw std::bad_alloc();
        if (!v_.empty()) memcpy(arr, v_.data(), v_.size() * sizeof(backend_tensor));
        *out = arr;
        *nout = (int)v_.size();
        v_.clear();
    }

  private:
    std::vector<backend_tensor> v_;

    void add(at::Tensor t, const std::string &name, bool scalar) {
        size_t idx = v_.size();
        if (t.is_sparse()) t = t.to_dense();
        if (t.is_quantized()) fail(BACKEND_EUNSUPPORTED, "output %zu is a quantized tensor; dequantize it in the model", idx);
        if (!t.device().is_cpu()) t = t.cpu();
        if (t.scalar_type() == at::kBFloat16) t = t.to(at::kFloat);
        dtype_t dt;
        if (!from_scalar_type(t.scalar_type(), dt))
            fail(BACKEND_EUNSUPPORTED, "output %zu has dtype %s, which inferd cannot return", idx, c10::toString(t.scalar_type()));
        if (t.dim() > BACKEND_MAX_DIMS) fail(BACKEND_EUNSUPPORTED, "output %zu has %ld dimensions", idx, (long)t.dim());
        t = t.contiguous();
        backend_tensor bt;
        memset(&bt, 0, sizeof bt);
        bt.dtype = dt;
        bt.ndim = (int)t.dim();
        for (int d = 0; d < bt.ndim; d++) bt.shape[d] = t.size(d);
        bt.nbytes = t.nbytes();
        bt.is_scalar = scalar;
        snprintf(bt.name, sizeof bt.name, "%s", name.c_str());
        v_.push_back(bt);
        v_.back().data = malloc(bt.nbytes ? bt.nbytes : 1);
        if (!v_.back().data) throw std::bad_alloc();
        if (bt.nbytes) memcpy(v_.back().data, t.data_ptr(), bt.nbytes);
    }
};

backend_output_kind output_kind(const c10::TypePtr &t) {
    switch (t->kind()) {
    case c10::TypeKind::TensorType: return OUTPUT_TENSOR;
    case c10::TypeKind::TupleType: return OUTPUT_TUPLE;
    case c10::TypeKind::ListType: return OUTPUT_LIST;
    case c10::TypeKind::DictType: return OUTPUT_DICT;
    case c10::TypeKind::IntType:
    case c10::TypeKind::FloatType:
    case c10::TypeKind::BoolType:
    case c10::TypeKind::NumberType: return OUTPUT_SCALAR;
    default: return OUTPUT_UNKNOWN;
    }
}

bool is_oom(const char *msg) {
    return strstr(msg, "not enough memory") || strstr(msg, "out of memory");
}

} // namespace

// ---------------------------------------------------------------- the ABI

struct backend_model {
    torch::jit::Module module;
    backend_info info;
    std::vector<ArgKind> args; // forward's arguments, self excluded
};

namespace {

// Fills what describe() returns from the module's forward schema.
void describe_module(backend_model &m) {
    backend_info &info = m.info;
    for (const at::Tensor &p : m.module.parameters(/*recurse=*/true)) info.parameters += p.numel();
    const c10::FunctionSchema &schema = m.module.get_method("forward").function().getSchema();
    const auto &args = schema.arguments();
    for (size_t i = 1; i < args.size(); i++) {
        m.args.push_back(arg_kind(args[i].type()));
        if (info.nargs == BACKEND_MAX_ARGS) continue;
        backend_arg &a = info.args[info.nargs++];
        snprintf(a.name, sizeof a.name, "%s", args[i].name().c_str());
        snprintf(a.type, sizeof a.type, "%s", args[i].type()->annotation_str().c_str());
    }
    info.output_kind = OUTPUT_UNKNOWN;
    if (schema.returns().size() == 1) {
        const c10::TypePtr &ret = schema.returns()[0].type();
        info.output_kind = output_kind(ret);
        snprintf(info.output_type, sizeof info.output_type, "%s", ret->annotation_str().c_str());
    }
}

const char *api_name(void) { return "libtorch"; }
const char *api_version(void) { return TORCH_VERSION; }

int api_init(int intra, int inter, int jit_profiling, char *err, size_t errlen) {
    return guarded(err, errlen, [&] {
        // set_num_interop_threads throws once the pool exists: only once.
        static std::once_flag interop_once;
        std::call_once(interop_once, [&] {
            if (inter > 0) at::set_num_interop_threads(inter);
        });
        if (intra > 0) at::set_num_threads(intra);
        torch::jit::getProfilingMode() = jit_profiling != 0;
        torch::jit::getExecutorMode() = jit_profiling != 0;
        return BACKEND_OK;
    });
}

int api_load(const char *path, const backend_load_opts *opts, backend_model **out, char *err, size_t errlen) {
    return guarded(err, errlen, [&] {
        if (!path || !out) fail(BACKEND_EINTERNAL, "load: NULL argument");
        *out = nullptr;
        Archive a = open_archive(path);
        auto m = std::make_unique<backend_model>();
        memset(&m->info, 0, sizeof m->info);
        Loaded l;
        try {
            if (opts && opts->use_mmap) {
                m->info.mmap = load_with_mapping(a, l);
            } else {
                a.map.reset(); // only needed for the checks above
                l.module = torch::jit::load(path);
            }
        } catch (const c10::Error &e) {
            fail(BACKEND_EINTERNAL, "cannot load %s: %s", path, one_line(e.what_without_backtrace()).c_str());
        }
        m->module = std::move(l.module);
        m->module.eval();
        if (!m->module.find_method("forward"))
            fail(BACKEND_ENOTSCRIPT, "%s has no forward() method", path);
        describe_module(*m);
        m->info.weights_bytes = a.weights_bytes;
        m->info.mapped_bytes = l.mapped_bytes;
        m->info.copied_bytes = a.weights_bytes - l.mapped_bytes;
        m->info.unaligned_records = m->info.mmap ? l.unaligned_records : 0;
        *out = m.release();
        return BACKEND_OK;
    });
}

int api_describe(backend_model *m, backend_info *info, char *err, size_t errlen) {
    return guarded(err, errlen, [&] {
        if (!m || !info) fail(BACKEND_EINTERNAL, "describe: NULL argument");
        *info = m->info;
        return BACKEND_OK;
    });
}

// Runs the model; errors it raises are the caller's input's fault.
IValue run_forward(backend_model &m, std::vector<IValue> inputs) {
    try {
        return m.module.forward(std::move(inputs));
    } catch (const c10::Error &e) {
        const char *msg = e.what_without_backtrace();
        throw ShimError{is_oom(msg) ? BACKEND_EINTERNAL : BACKEND_EINPUT, one_line(msg)};
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        throw ShimError{BACKEND_EINPUT, one_line(e.what())};
    }
}

int api_forward(backend_model *m, const backend_tensor *in, int nin, backend_tensor **out, int *nout, char *err, size_t errlen) {
    return guarded(err, errlen, [&] {
        if (!m || !out || !nout || nin < 0 || (nin > 0 && !in)) fail(BACKEND_EINTERNAL, "forward: bad arguments");
        *out = nullptr;
        *nout = 0;
        if ((size_t)nin > m->args.size())
            fail(BACKEND_EINPUT, "the model takes %zu input(s), got %d", m->args.size(), nin);
        c10::InferenceMode inference;
        std::vector<IValue> inputs;
        for (int i = 0; i < nin; i++) inputs.push_back(to_input(in[i], m->args[i], i));
        IValue result = run_forward(*m, std::move(inputs));
        Outputs outputs;
        outputs.flatten(result, "");
        outputs.release(out, nout);
        return BACKEND_OK;
    });
}

void api_free_outputs(backend_tensor *out, int nout) {
    if (!out) return;
    for (int i = 0; i < nout; i++) free(out[i].data);
    free(out);
}

// The mapping is unmapped with the last storage that points into it.
void api_free_model(backend_model *m) { delete m; }

const backend_api kApi = {
    BACKEND_ABI_VERSION, api_name,    api_version,      api_init,      api_load,
    api_describe,        api_forward, api_free_outputs, api_free_model,
};

} // namespace

extern "C" __attribute__((visibility("default"))) const backend_api *inferd_backend_api(void) { return &kApi; }
