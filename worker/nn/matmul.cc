// Matrix products on oneDNN (see worker/nn/matmul.h).
#include "worker/nn/matmul.h"

#include <omp.h>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include <cstring>

#include <glog/logging.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "worker/nn/eigen.h"

namespace mtps {
namespace {

using dnnl::memory;

// fp32 to bf16, rounding to nearest even; a NaN stays a (quiet) NaN.
// Branch-free, so that the loop vectorises.
void ConvertToBf16Scalar(const float* from, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, from + i, sizeof(bits));
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    const uint32_t quiet = (bits >> 16) | 0x40u;
    out[i] = static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
  }
}

// ConvertToBf16 (matmul.h) into a buffer grown to fit.
void ConvertInto(const float* from, int64_t n, std::vector<uint16_t>* to) {
  if (static_cast<int64_t>(to->size()) < n) to->resize(static_cast<size_t>(n));
  ConvertToBf16(from, n, to->data());
}

// A product with fewer rows or columns than this (a matrix-vector product)
// runs on Eigen in fp32 (see matmul.h). Measured on the 2-core Intel machine
// of the README, one thread, steady state: an output layer's 256x128 by 128x1
// took 11.7 us in oneDNN fp32 (8.3 in bf16) against Eigen's 2.8, and its
// weight gradient, 128x256 by 256x1, 19.9 us (13.0) against 2.3. A product
// thin only in its depth (k), the output layer's outer product 256x1 by
// 1x128, stays on oneDNN: 5.2 us there, 8.4 on Eigen.
constexpr int64_t kThinDim = 8;
const std::string& ThinImplementation() {
  static const std::string* const name =
      new std::string("eigen:fp32 (fewer than 8 rows or columns)");
  return *name;
}

void ThinProduct(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                 const float* b, float* c, bool accumulate) {
  using Map = Eigen::Map<const RowMatrix<float>>;
  const Map am(a, trans_a ? k : m, trans_a ? m : k);
  const Map bm(b, trans_b ? n : k, trans_b ? k : n);
  Eigen::Map<RowMatrix<float>> cm(c, m, n);
  auto run = [&](const auto& op_a, const auto& op_b) {
    if (accumulate) {
      cm.noalias() += op_a * op_b;
    } else {
      cm.noalias() = op_a * op_b;
    }
  };
  if (trans_a) {
    if (trans_b) {
      run(am.transpose(), bm.transpose());
    } else {
      run(am.transpose(), bm);
    }
  } else if (trans_b) {
    run(am, bm.transpose());
  } else {
    run(am, bm);
  }
}

}  // namespace

// 32 values per instruction where the CPU has AVX512_BF16 (2.8x the scalar
// loop on data in cache, 1.7x beyond it, measured on the 2-core Intel
// machine of the README); a block holding a denormal takes the scalar loop.
void ConvertToBf16(const float* from, int64_t n, uint16_t* out) {
  int64_t i = 0;
#if defined(__AVX512BF16__)
  constexpr int kDenormal = 0x20;  // vfpclassps: denormal
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(from + i);
    const __m512 hi = _mm512_loadu_ps(from + i + 16);
    if ((_mm512_fpclass_ps_mask(lo, kDenormal) | _mm512_fpclass_ps_mask(hi, kDenormal)) != 0) {
      ConvertToBf16Scalar(from + i, 32, out + i);
      continue;
    }
    _mm512_storeu_si512(out + i, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
#endif
  ConvertToBf16Scalar(from + i, n - i, out + i);
}

struct MatmulEngine::State {
  struct Product {
    dnnl::matmul primitive;
    memory a, b, c;
    std::string impl;
  };
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Key, Product> products;
  std::vector<uint16_t> a16, b16;
};

MatmulEngine::MatmulEngine(ComputePrecision precision, int threads)
    : precision_(precision), threads_(threads < 1 ? 1 : threads) {}

MatmulEngine::~MatmulEngine() = default;

bool MatmulEngine::Supported(ComputePrecision precision) {
  const auto type =
      precision == ComputePrecision::kBf16 ? memory::data_type::bf16 : memory::data_type::f32;
  try {
    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    memory::desc a({1, 1}, type, memory::format_tag::ab);
    memory::desc c({1, 1}, memory::data_type::f32, memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, a, c), engine);
    return true;
  } catch (const dnnl::error& e) {
    LOG(WARNING) << "oneDNN has no matmul for this precision here: " << e.what();
    return false;
  }
}

void MatmulEngine::Multiply(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            const float* a, const float* b, float* c, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) std::memset(c, 0, static_cast<size_t>(m * n) * sizeof(float));
    return;
  }
  if (m < kThinDim || n < kThinDim) {
    ThinProduct(trans_a, trans_b, m, n, k, a, b, c, accumulate);
    last_impl_ = &ThinImplementation();
    return;
  }
  if (state_ == nullptr) {
    // On first use, on the thread that multiplies: a config check that
    // builds a model never runs oneDNN.
    omp_set_num_threads(threads_);
    state_ = std::make_unique<State>();
  }
  const bool bf16 = precision_ == ComputePrecision::kBf16;
  const Key key{trans_a, trans_b, m, n, k, accumulate};
  auto it = state_->products.find(key);
  if (it == state_->products.end()) {
    const auto in_type = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
    // A stored m x k row-major: strides {k, 1}; stored k x m: {1, m}.
    memory::desc a_md({m, k}, in_type, trans_a ? memory::dims{1, m} : memory::dims{k, 1});
    memory::desc b_md({k, n}, in_type, trans_b ? memory::dims{1, k} : memory::dims{n, 1});
    memory::desc c_md({m, n}, memory::data_type::f32, memory::dims{n, 1});
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, state_->engine);
    State::Product p;
    p.primitive = dnnl::matmul(pd);
    p.a = memory(a_md, state_->engine, DNNL_MEMORY_NONE);
    p.b = memory(b_md, state_->engine, DNNL_MEMORY_NONE);
    p.c = memory(c_md, state_->engine, DNNL_MEMORY_NONE);
    p.impl = pd.impl_info_str();
    VLOG(1) << "matmul " << m << "x" << k << "x" << n << (trans_a ? " A^T" : "")
            << (trans_b ? " B^T" : "") << (accumulate ? " +C" : "") << ": " << p.impl;
    it = state_->products.emplace(key, std::move(p)).first;
  }
  State::Product& p = it->second;
  if (bf16) {
    ConvertInto(a, m * k, &state_->a16);
    ConvertInto(b, k * n, &state_->b16);
    p.a.set_data_handle(state_->a16.data());
    p.b.set_data_handle(state_->b16.data());
  } else {
    p.a.set_data_handle(const_cast<float*>(a));
    p.b.set_data_handle(const_cast<float*>(b));
  }
  p.c.set_data_handle(c);
  p.primitive.execute(state_->stream,
                      {{DNNL_ARG_SRC, p.a}, {DNNL_ARG_WEIGHTS, p.b}, {DNNL_ARG_DST, p.c}});
  state_->stream.wait();
  last_impl_ = &p.impl;
}

}  // namespace mtps
