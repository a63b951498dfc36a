// The op registry (kernels/op.h): a new op is one OpDef plus its kernel. Shown with an op this
// test defines, which neither the plan verifier, nor the CPU backend, nor the built-in registry
// knows: a plan using it is refused by the built-in ops, verified (its own checks included) and
// run by a registry that has it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "codegen/plan_writer.h"
#include "compiler/error.h"
#include "compiler/passes/memory_plan.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/op.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace kiln;

namespace {

// A tensor of the plan's table, its bytes those of its shape.
TensorInfo tensor(const char* name, DType dt, std::vector<int64_t> shape, Region region, uint64_t offset) {
  TensorInfo t{name, dt, std::move(shape), region, offset};
  t.size_bytes = uint64_t(t.numel()) * dtype_size(dt);
  return t;
}

// test_scale: y = s · x, elementwise.
// x: (n,) f32 → y: (n,) f32 (may be x itself). Plan operands: inputs {x}; outputs {y}; float attrs {s}.
struct ScaleArgs {
  const float* x;
  float* y;
  int64_t n;
  float s;
};

void scale_cpu(const ScaleArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.n, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) a.y[i] = a.s * a.x[i];
  });
}

Status scale_validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 1));
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, c.in(0)->shape));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, c.in(0)->shape));
  if (c.fattr32(0) == 0.0f) return invalid_argument("scale is zero");  // the loader has checked it is a finite f32
  return Status::ok();
}

ScaleArgs scale_args(const OpLaunch& l) { return {l.in_f32(0), l.out_f32(0), l.in(0)->shape[0], l.fattr32(0)}; }

const OpDef kTestScaleOp{
    "test_scale", 1, 1, 1, 0, 1, {}, 0, true, scale_validate, bind_cpu_kernel<scale_args, scale_cpu>, nullptr, nullptr};

// A plan of one program, "scale": state input x (n,) → output y, through the op. The writer
// verifies the plan against `ops`, the registry it is meant to load with.
void write_scale_plan(const std::string& path, int64_t n, double s,
                      const OpRegistry& ops = builtin_ops().with(kTestScaleOp)) {
  Graph g;
  const uint32_t x = g.state("x", {n}, DType::F32);
  const uint32_t y = g.activation("y", {n});
  GraphProgram p;
  p.name = "scale";
  add_node(p, kTestScaleOp, {x}, {y}, {}, {s});
  p.inputs = {{"x", x}};
  p.outputs = {{"y", y}};
  g.programs.push_back(std::move(p));
  g.info.architecture = "test";
  g.info.vocab_size = g.info.max_seq = g.info.batch = g.info.chunk = 1;
  plan_memory(g);
  write_plan(
      g, PlanTargets{true, {}}, [](const Value&, std::vector<uint8_t>&) {}, path, nullptr, ops);
}

}  // namespace

TEST_CASE(
    "ops: an op defined outside kiln is refused by the built-in registry and verified and run by one that has it") {
  test::TempDir d;
  const std::string path = d / "scale.kplan";
  write_scale_plan(path, 5, 2.5);

  auto builtin = Plan::load_file(path);
  REQUIRE_FALSE(builtin.is_ok());
  CHECK(builtin.status().message().find("kernel 'test_scale' version 1, which this runtime does not provide") !=
        std::string::npos);

  const OpRegistry ops = builtin_ops().with(kTestScaleOp);
  CHECK(ops.find("test_scale", 1) == &kTestScaleOp);
  CHECK(ops.find("test_scale", 2) == nullptr);
  CHECK(ops.find("matmul", 1) != nullptr);  // the built-in ones are all still there
  CHECK(ops.ops().size() == builtin_ops().ops().size() + 1);
  auto plan = Plan::load_file(path, nullptr, ops);
  REQUIRE(plan.is_ok());
  const Plan& p = *plan.value();
  REQUIRE(p.kernels().size() == 1);
  CHECK(p.kernels()[0] == &kTestScaleOp);

  auto exec = make_cpu_executor(plan.value(), 2);
  REQUIRE(exec.is_ok());
  const ProgramInfo& prog = p.programs()[0];
  const float x[5] = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f};
  std::memcpy(exec.value()->host_state() + p.tensors()[prog.input("x")].offset, x, sizeof(x));
  REQUIRE(exec.value()->run(0).is_ok());
  const float* y = static_cast<const float*>(exec.value()->host_output(prog.output("y")));
  for (int i = 0; i < 5; ++i) CHECK(y[i] == 2.5f * x[i]);

  // The op's own checks run when the plan is verified, and the writer runs the verifier on what
  // it wrote: a plan this runtime would refuse is a compile error, and no file is left behind.
  auto write_error = [&](const std::string& path, double scale, const OpRegistry& with) {
    try {
      write_scale_plan(path, 5, scale, with);
    } catch (const CompileError& e) {
      CHECK_FALSE(path_exists(path));
      CHECK(kiln::test::temp_files_beside(path).empty());
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(write_error(d / "zero.kplan", 0.0, ops).find("(test_scale): scale is zero") != std::string::npos);
  // Every op's float attributes are checked before: a scale finite as a double but not as the
  // float the kernel reads is refused.
  CHECK(write_error(d / "huge.kplan", 1e300, ops).find("not a finite f32") != std::string::npos);
  // Written for a runtime that lacks the op.
  CHECK(write_error(d / "builtin.kplan", 2.0, builtin_ops())
            .find("kernel 'test_scale' version 1, which this runtime does not provide") != std::string::npos);
}

// Ops whose attributes grew keep their older version registered, so plans written before still
// load: attention v1 (no window), embedding v1 (no scale), geglu v1 (no activation kind), rope v1
// (the whole head rotated), conv2d v1 (a 2x upsample flag, not the resize's size).
TEST_CASE("ops: the built-in registry has one op per name and version, each with its counts and entry points") {
  const auto& ops = builtin_ops().ops();
  CHECK(ops.size() >= 27);
  for (size_t i = 0; i < ops.size(); ++i) {
    const OpDef& op = *ops[i];
    CAPTURE(std::string(op.name));
    CHECK(builtin_ops().find(op.name, op.version) == &op);
    for (size_t j = i + 1; j < ops.size(); ++j)
      CHECK_FALSE((std::string(ops[j]->name) == op.name && ops[j]->version == op.version));
    CHECK(op.n_inputs >= 1);
    CHECK(op.n_outputs >= 1);
    const bool validates = op.validate != nullptr, runs_on_cpu = op.bind_cpu != nullptr;
    const bool runs_on_cuda = op.bind_cuda != nullptr;
    CHECK(validates);
    CHECK(runs_on_cpu);
#ifdef KILN_WITH_CUDA
    CHECK(runs_on_cuda);
#else
    CHECK_FALSE(runs_on_cuda);
#endif
    CHECK(op.n_state >= 0);
    CHECK(op.n_state <= 3);
    for (int k = 0; k < op.n_state; ++k) {
      CHECK(op.state[k].operand >= 0);
      CHECK(op.state[k].operand < op.n_inputs);
      CHECK(op.state[k].input != nullptr);
    }
  }
  struct Older {
    const char* name;
    int int_attrs, float_attrs;  // of version 1
  };
  for (const Older& o : {Older{"attention", 3, 1}, Older{"embedding", 0, 0}, Older{"geglu", 0, 0}, Older{"rope", 2, 1},
                         Older{"conv2d", 3, 1}}) {
    CAPTURE(std::string(o.name));
    const OpDef* v1 = builtin_ops().find(o.name, 1);
    const OpDef* v2 = builtin_ops().find(o.name, 2);
    REQUIRE(v1);
    REQUIRE(v2);
    CHECK(v1->n_int_attrs == o.int_attrs);
    CHECK(v1->n_float_attrs == o.float_attrs);
    // one attribute more (rope v2: none more; its inv_freq may be shorter)
    CHECK(v2->n_int_attrs + v2->n_float_attrs == o.int_attrs + o.float_attrs + (o.name == std::string("rope") ? 0 : 1));
    CHECK((v1->bind_cpu == v2->bind_cpu));
    CHECK((v1->validate == v2->validate) == (o.name != std::string("rope")));  // rope v1: the whole head only
  }
  // attention version 3 adds the soft cap (a second float attribute) to version 2.
  const OpDef* att2 = builtin_ops().find("attention", 2);
  const OpDef* att3 = builtin_ops().find("attention", 3);
  REQUIRE(att2);
  REQUIRE(att3);
  CHECK(att2->n_float_attrs == 1);
  CHECK(att3->n_float_attrs == 2);
  CHECK(att3->n_int_attrs == att2->n_int_attrs);
  CHECK((att2->bind_cpu == att3->bind_cpu));
  // version 4 adds the sinks (a sixth input), version 5 the ALiBi slopes (a seventh), on the same kernel
  const OpDef* att4 = builtin_ops().find("attention", 4);
  const OpDef* att5 = builtin_ops().find("attention", 5);
  REQUIRE(att4);
  REQUIRE(att5);
  CHECK((att3->n_inputs == 5 && att4->n_inputs == 6 && att5->n_inputs == 7));
  CHECK((att4->n_int_attrs == att3->n_int_attrs && att5->n_float_attrs == att3->n_float_attrs));
  CHECK((att3->bind_cpu == att5->bind_cpu && att4->validate == att5->validate));
  // head_rmsnorm: versions 1, 2 and 3 take 3, 4 and 5 int attributes (k_head_dim, then Cohere's mode) on one
  // kernel; layernorm version 2 (its bias optional) has version 1's operands and kernel, and its own check.
  for (uint32_t v = 1; v <= 3; ++v) {
    CAPTURE(v);
    const OpDef* h = builtin_ops().find("head_rmsnorm", v);
    REQUIRE(h);
    CHECK(h->n_int_attrs == int(v) + 2);
    CHECK((h->bind_cpu == builtin_ops().find("head_rmsnorm", 3)->bind_cpu));
  }
  const OpDef* ln1 = builtin_ops().find("layernorm", 1);
  const OpDef* ln2 = builtin_ops().find("layernorm", 2);
  REQUIRE(ln1);
  REQUIRE(ln2);
  CHECK(ln1->n_inputs == ln2->n_inputs);
  CHECK(ln1->n_float_attrs == ln2->n_float_attrs);
  CHECK((ln1->bind_cpu == ln2->bind_cpu));
  CHECK_FALSE((ln1->validate == ln2->validate));
  // Ops whose inputs grew by an optional state operand (matmul's w_scale; n_valid, so the CPU skips
  // padding rows): the older version has one input less and no more state, the same entry points.
  struct Grown {
    const char* name;
    uint32_t old_version;
    int inputs;      // of the old version
    const char* op;  // the new operand's state name, or null (not state)
  };
  for (const Grown& o : {Grown{"matmul", 1, 4, nullptr}, Grown{"rmsnorm", 1, 2, "n_valid"},
                         Grown{"swiglu", 1, 1, "n_valid"}, Grown{"rope", 2, 3, "n_valid"}}) {
    CAPTURE(std::string(o.name));
    const OpDef* old = builtin_ops().find(o.name, o.old_version);
    const OpDef* now = builtin_ops().find(o.name, o.old_version + 1);
    REQUIRE(old);
    REQUIRE(now);
    CHECK(old->n_inputs == o.inputs);
    CHECK(now->n_inputs == o.inputs + 1);
    CHECK(now->n_state == old->n_state + (o.op ? 1 : 0));
    if (o.op) CHECK(std::string(now->state[now->n_state - 1].input) == o.op);
    if (o.op) CHECK(now->state[now->n_state - 1].operand == o.inputs);
    CHECK((old->bind_cpu == now->bind_cpu));
    CHECK((old->validate == now->validate));
  }
}

// rmsnorm and swiglu version 2 and rope version 3 hand the launch's n_valid to the CPU kernel, which
// then leaves the padding rows as they were; their older versions (no such operand) compute every
// row. Bound as the backend binds them (OpLaunch over a tensor table and host addresses).
TEST_CASE("ops: rmsnorm, swiglu and rope pass n_valid to the CPU kernel, and their older versions compute every row") {
  const int64_t batch = 2, chunk = 3, rows = batch * chunk, d = 8;
  const float kOld = 42.0f;  // every output row's value before the launch
  struct Case {
    const char* name;
    uint32_t old_version;
    int nv;                                 // n_valid's operand index in the new version
    std::vector<std::vector<int64_t>> ins;  // input shapes before n_valid (f32 but start_pos)
    int out_of;                             // the input the output is (in place), or -1
    std::vector<int64_t> out, iattrs;
    std::vector<double> fattrs;
  };
  const std::vector<Case> cases = {
      {"rmsnorm", 1, 2, {{rows, d}, {d}}, -1, {rows, d}, {}, {1e-5}},
      {"swiglu", 1, 1, {{rows, 2 * d}}, -1, {rows, d}, {}, {}},
      {"rope", 2, 3, {{d / 2}, {batch}, {rows, d}}, 2, {rows, d}, {1, d}, {1.0}},
  };
  ThreadPool pool(2);
  std::vector<float, CacheLineAllocator<float>> launch_buffer;
  CpuBindEnv env{&launch_buffer};
  const std::vector<int32_t> n_valid = {1, 3};  // batch row 0: rows 1 and 2 are padding
  for (const Case& c : cases)
    for (const bool with_nv : {true, false}) {
      CAPTURE(std::string(c.name));
      CAPTURE(with_nv);
      const OpDef* op = builtin_ops().find(c.name, with_nv ? c.old_version + 1 : c.old_version);
      REQUIRE(op);
      std::vector<TensorInfo> t;
      std::vector<std::vector<float>> data;
      std::vector<int32_t> start = {3, 5};  // (position 0 would rotate by nothing)
      std::vector<void*> ptrs;
      LaunchInfo li;
      for (size_t i = 0; i < c.ins.size(); ++i) {
        const bool is_start = std::string(c.name) == "rope" && i == 1;
        t.push_back(TensorInfo{"in" + std::to_string(i), is_start ? DType::I32 : DType::F32, c.ins[i]});
        int64_t n = 1;
        for (int64_t v : c.ins[i]) n *= v;
        data.push_back(test::random_floats(size_t(n), uint32_t(500 + i)));
        if (int(i) == c.out_of) std::fill(data.back().begin(), data.back().end(), kOld);
        ptrs.push_back(is_start ? static_cast<void*>(start.data()) : data.back().data());
        li.inputs.push_back(uint32_t(i));
      }
      if (with_nv) {
        t.push_back(TensorInfo{"n_valid", DType::I32, {batch}});
        ptrs.push_back(const_cast<int32_t*>(n_valid.data()));
        li.inputs.push_back(uint32_t(t.size() - 1));
      }
      REQUIRE(int(li.inputs.size()) == op->n_inputs);
      REQUIRE((!with_nv || op->state[op->n_state - 1].operand == c.nv));
      std::vector<float> out(size_t(rows * d), kOld);
      if (c.out_of >= 0) {
        li.outputs = {uint32_t(c.out_of)};
      } else {
        t.push_back(TensorInfo{"out", DType::F32, c.out});
        ptrs.push_back(out.data());
        li.outputs = {uint32_t(t.size() - 1)};
      }
      const float* y = c.out_of >= 0 ? data[size_t(c.out_of)].data() : out.data();
      li.int_attrs = c.iattrs;
      li.float_attrs = c.fattrs;
      ModelInfo model;
      auto bound = op->bind_cpu(OpLaunch(li, t, model, &ptrs), env);
      REQUIRE(bound.is_ok());
      bound.value()(pool);
      for (int64_t r = 0; r < rows; ++r) {
        const bool padding = r % chunk >= n_valid[size_t(r / chunk)];
        CAPTURE(r);
        CHECK((y[r * d] == kOld) == (with_nv && padding));
      }
    }
}

// conv2d version 2 reads its input at {up_h, up_w}: 0, 0 as stored, 2x as version 1's upsample flag
// (bit for bit), or a size between (the odd skips of a UNet's up path; tests/diffusion's odd_tiny
// checks that against diffusers). The verifier refuses other sizes.
TEST_CASE("ops: conv2d version 2 resizes as version 1 upsamples, and refuses resizes outside 1x to 2x") {
  const int64_t b = 2, h = 3, w = 4, cin = 5, cout = 6;
  const auto x = test::random_floats(size_t(b * h * w * cin), 710);
  const auto wt = test::random_floats(size_t(cout * 3 * 3 * cin), 711);
  const ModelInfo model;
  std::vector<float, CacheLineAllocator<float>> launch_buffer;
  CpuBindEnv env{&launch_buffer};
  // Runs version `v` with int attrs {1, 1, ...up}; the output is ho × wo (the read size).
  auto run = [&](uint32_t v, std::vector<int64_t> up, int64_t ho, int64_t wo, std::string* error) {
    const OpDef* op = builtin_ops().find("conv2d", v);
    REQUIRE(op);
    std::vector<TensorInfo> t = {TensorInfo{"x", DType::F32, {b, h, w, cin}, Region::kArena, 0},
                                 TensorInfo{"w", DType::F32, {cout, 3, 3, cin}, Region::kWeights, 0},
                                 TensorInfo{"y", DType::F32, {b, ho, wo, cout}, Region::kArena, 4096}};
    for (TensorInfo& ti : t) ti.size_bytes = uint64_t(ti.numel()) * 4;
    LaunchInfo li;
    li.inputs = {0, 1, kNoTensor, kNoTensor, kNoTensor};
    li.outputs = {2};
    li.int_attrs = {1, 1};
    li.int_attrs.insert(li.int_attrs.end(), up.begin(), up.end());
    li.float_attrs = {1.0};
    uint64_t scratch = 0;
    const Status st = validate_launch(*op, li, t, model, &scratch);
    *error = st.message();
    std::vector<float> y(size_t(b * ho * wo * cout), NAN);
    if (!st.is_ok()) return y;
    std::vector<void*> ptrs = {const_cast<float*>(x.data()), const_cast<float*>(wt.data()), y.data()};
    ThreadPool pool(2, scratch);
    auto bound = op->bind_cpu(OpLaunch(li, t, model, &ptrs), env);
    REQUIRE(bound.is_ok());
    bound.value()(pool);
    return y;
  };
  std::string e;
  const auto v1_up = run(1, {1}, 2 * h, 2 * w, &e);
  REQUIRE(e == "");
  CHECK(run(2, {2 * h, 2 * w}, 2 * h, 2 * w, &e) == v1_up);
  const auto v1_plain = run(1, {0}, h, w, &e);
  REQUIRE(e == "");
  CHECK(run(2, {0, 0}, h, w, &e) == v1_plain);
  // 3x4 read at 5x7: every output written.
  const auto odd = run(2, {2 * h - 1, 2 * w - 1}, 2 * h - 1, 2 * w - 1, &e);
  REQUIRE(e == "");
  for (float v : odd) REQUIRE(std::isfinite(v));
  struct Bad {
    std::vector<int64_t> up;
    int64_t ho, wo;
  };
  for (const Bad& b : {Bad{{h - 1, w}, h - 1, w},          // smaller than stored
                       Bad{{2 * h + 1, w}, 2 * h + 1, w},  // past 2x
                       Bad{{2 * h, 0}, 2 * h, w},          // one axis unset
                       Bad{{-1, -1}, h, w}}) {
    CAPTURE(b.up[0]);
    CAPTURE(b.up[1]);
    run(2, b.up, b.ho, b.wo, &e);
    CHECK(e.find("convolution attributes are invalid") != std::string::npos);
  }
  run(1, {2}, 2 * h, 2 * w, &e);  // version 1's flag is 0 or 1
  CHECK(e.find("convolution attributes are invalid") != std::string::npos);
}

// image_mean (a ControlNet with global_pool_conditions): each image's rows become its mean row,
// the first `skip` images zeros; in place too. The verifier refuses a skip outside [0, images].
TEST_CASE(
    "ops: image_mean averages each image's rows, zeroes the skipped images, and refuses skips outside [0, images]") {
  const int64_t images = 3, n = 70, cols = 130;  // (more columns than one CPU task takes)
  const auto x = test::random_floats(size_t(images * n * cols), 720);
  ThreadPool pool(2);
  for (const int64_t skip : {0, 1, 3})
    for (const bool in_place : {false, true}) {
      CAPTURE(skip);
      CAPTURE(in_place);
      std::vector<float> y(x.size(), NAN), xi = x;
      image_mean_cpu({xi.data(), in_place ? xi.data() : y.data(), images, n, cols, skip}, pool);
      const std::vector<float>& out = in_place ? xi : y;
      for (int64_t i = 0; i < images; ++i)
        for (int64_t c = 0; c < cols; ++c) {
          double sum = 0;
          for (int64_t r = 0; r < n; ++r) sum += double(x[size_t((i * n + r) * cols + c)]);
          const float want = i < skip ? 0.0f : float(sum / double(n));
          for (int64_t r = 0; r < n; ++r) REQUIRE(out[size_t((i * n + r) * cols + c)] == want);
        }
    }
  const ModelInfo model;
  std::vector<TensorInfo> t = {TensorInfo{"x", DType::F32, {images, n, cols}, Region::kArena, 0},
                               TensorInfo{"y", DType::F32, {images, n, cols}, Region::kArena, 1 << 20}};
  for (TensorInfo& ti : t) ti.size_bytes = uint64_t(ti.numel()) * 4;
  for (const int64_t skip : {int64_t(-1), images, images + 1}) {
    CAPTURE(skip);
    LaunchInfo li;
    li.inputs = {0};
    li.outputs = {1};
    li.int_attrs = {skip};
    uint64_t scratch = 0;
    const Status st = validate_launch(kImageMeanOp, li, t, model, &scratch);
    if (skip == images) CHECK_MESSAGE(st.is_ok(), st.message());
    else CHECK(st.message().find("image_mean skip is not in [0, images]") != std::string::npos);
  }
}

// clamp (clip_qkv): the verifier refuses bounds that are not finite or not ordered (after their rounding to f32).
TEST_CASE("ops: clamp refuses bounds that are infinite, NaN or not ordered") {
  const ModelInfo model;
  const std::vector<TensorInfo> t = {tensor("x", DType::F32, {4, 8}, Region::kArena, 0)};
  const double inf = std::numeric_limits<double>::infinity();
  for (const auto& b : std::vector<std::pair<double, double>>{
           {-8, 8}, {3, 3}, {-1e-3, 0}, {8, -8}, {-inf, 8}, {-8, inf}, {NAN, 8}, {-8, NAN}, {-1e39, 0}, {0, 1e39}}) {
    const double lo = b.first, hi = b.second;  // (CAPTURE cannot take a binding)
    CAPTURE(lo);
    CAPTURE(hi);
    LaunchInfo li;
    li.inputs = {0, kNoTensor};
    li.outputs = {0};
    li.float_attrs = {lo, hi};
    uint64_t scratch = 0;
    const Status st = validate_launch(kClampOp, li, t, model, &scratch);
    if (std::isfinite(float(lo)) && std::isfinite(float(hi)) && lo <= hi) CHECK_MESSAGE(st.is_ok(), st.message());
    else CHECK(st.message().find("clamp bounds must be finite, lo <= hi") != std::string::npos);
  }
  // x of rank 2; n_valid an i32 (batch,) state tensor whose batch divides the rows.
  auto refusal = [&](std::vector<int64_t> x_shape, DType nv_dtype, int64_t batch, Region nv_region) {
    const std::vector<TensorInfo> u = {tensor("x", DType::F32, std::move(x_shape), Region::kArena, 0),
                                       tensor("n_valid", nv_dtype, {batch}, nv_region, 0)};
    LaunchInfo li;
    li.inputs = {0, 1};
    li.outputs = {0};
    li.float_attrs = {-1.0, 1.0};
    uint64_t scratch = 0;
    return validate_launch(kClampOp, li, u, model, &scratch).message();
  };
  CHECK(refusal({4, 8}, DType::I32, 2, Region::kState) == "");
  CHECK(refusal({32}, DType::I32, 2, Region::kState).find("rank") != std::string::npos);
  CHECK(refusal({4, 8}, DType::F32, 2, Region::kState).find("n_valid") != std::string::npos);
  CHECK(refusal({4, 8}, DType::I32, 3, Region::kState).find("rows are not a multiple of the batch") !=
        std::string::npos);
  CHECK(refusal({4, 8}, DType::I32, 2, Region::kArena).find("n_valid") != std::string::npos);
}

// add version 2 (Qwen2-MoE's shared expert): a gate of one f32 per output row scales each row's b by
// its sigmoid; the verifier refuses a gate of another shape or dtype, or one without a. Version 1
// (two operands) still loads.
TEST_CASE("ops: add version 2 takes a (rows, 1) f32 gate and refuses any other, and version 1 still loads") {
  const int64_t rows = 6, cols = 8;
  const ModelInfo model;
  auto check = [&](const OpDef& op, std::vector<uint32_t> inputs, std::vector<int64_t> gate_shape, DType gate_dtype) {
    const std::vector<TensorInfo> t = {tensor("x", DType::F32, {rows, cols}, Region::kArena, 0),
                                       tensor("b", DType::F32, {rows, cols}, Region::kArena, 4096),
                                       tensor("g", gate_dtype, std::move(gate_shape), Region::kArena, 8192)};
    LaunchInfo li;
    li.inputs = std::move(inputs);
    li.outputs = {0};
    li.float_attrs = {1.0};
    uint64_t scratch = 0;
    return validate_launch(op, li, t, model, &scratch).message();
  };
  const OpDef* v1 = builtin_ops().find("add", 1);
  REQUIRE(v1 == &kAddOpV1);
  CHECK(builtin_ops().find("add", 2) == &kAddOp);
  CHECK(check(kAddOp, {0, 1, 2}, {rows, 1}, DType::F32) == "");
  CHECK(check(kAddOp, {0, 1, kNoTensor}, {rows, 1}, DType::F32) == "");
  CHECK(check(*v1, {0, 1}, {rows, 1}, DType::F32) == "");
  CHECK(check(*v1, {0, 1, 2}, {rows, 1}, DType::F32) != "");  // (version 1 has two operands)
  for (const auto& shape : {std::vector<int64_t>{rows + 1, 1}, {rows, 2}, {rows}, {1, 1}})
    CHECK(check(kAddOp, {0, 1, 2}, shape, DType::F32).find("gate") != std::string::npos);
  CHECK(check(kAddOp, {0, 1, 2}, {rows, 1}, DType::BF16).find("gate") != std::string::npos);
  CHECK(check(kAddOp, {kNoTensor, 1, 2}, {rows, 1}, DType::F32).find("needs its operand a") != std::string::npos);
}

// embedding version 3 (GPT-2's learned positions) takes start_pos (a state input) and a position table of the
// embedding's width and at least max_seq rows, both or neither; version 2 (no positions) takes two operands.
TEST_CASE("ops: embedding version 3 checks its start_pos and position table, version 2 takes neither") {
  const int64_t batch = 2, chunk = 3, vocab = 10, dim = 8, max_seq = 16;
  ModelInfo model;
  model.vocab_size = vocab;
  model.max_seq = max_seq;
  struct Case {
    std::vector<int64_t> start_shape, pos_shape;
    Region start_region;
    std::vector<uint32_t> inputs;
    const char* want;  // "" or a part of the message
  };
  auto check = [&](const OpDef& op, const Case& k) {
    const std::vector<TensorInfo> t = {tensor("tokens", DType::I32, {batch, chunk}, Region::kState, 0),
                                       tensor("table", DType::F32, {vocab, dim}, Region::kWeights, 0),
                                       tensor("start_pos", DType::I32, k.start_shape, k.start_region, 4096),
                                       tensor("pos", DType::BF16, k.pos_shape, Region::kWeights, 8192),
                                       tensor("y", DType::F32, {batch * chunk, dim}, Region::kArena, 0)};
    LaunchInfo li;
    li.inputs = k.inputs;
    li.outputs = {4};
    li.float_attrs = {1.0};
    uint64_t scratch = 0;
    return validate_launch(op, li, t, model, &scratch).message();
  };
  REQUIRE(builtin_ops().find("embedding", 3) == &kEmbeddingOp);
  REQUIRE(builtin_ops().find("embedding", 2) == &kEmbeddingOpV2);
  const std::vector<uint32_t> all = {0, 1, 2, 3};
  const Region state = Region::kState;
  CHECK(check(kEmbeddingOp, {{batch}, {max_seq, dim}, state, all, ""}) == "");
  CHECK(check(kEmbeddingOp, {{batch}, {max_seq + 5, dim}, state, all, ""}) == "");
  CHECK(check(kEmbeddingOp, {{batch}, {max_seq, dim}, state, {0, 1, kNoTensor, kNoTensor}, ""}) == "");
  CHECK(check(kEmbeddingOpV2, {{batch}, {max_seq, dim}, state, {0, 1}, ""}) == "");
  CHECK(check(kEmbeddingOpV2, {{batch}, {max_seq, dim}, state, all, ""}) != "");  // (two operands)
  for (const Case& k : std::vector<Case>{{{batch}, {max_seq, dim}, state, {0, 1, 2, kNoTensor}, "come together"},
                                         {{batch}, {max_seq, dim}, state, {0, 1, kNoTensor, 3}, "come together"},
                                         {{batch}, {max_seq - 1, dim}, state, all, "fewer than max_seq 16"},
                                         {{batch}, {max_seq, dim + 1}, state, all, "pos_table"},
                                         {{batch}, {max_seq * dim}, state, all, "pos_table"},
                                         {{4}, {max_seq, dim}, state, all, "multiple of the batch"},
                                         {{batch, 1}, {max_seq, dim}, state, all, "start_pos"},
                                         {{batch}, {max_seq, dim}, Region::kArena, all, "state"}}) {
    CAPTURE(k.want);
    const std::string err = check(kEmbeddingOp, k);
    CHECK_MESSAGE(err.find(k.want) != std::string::npos, err);
  }
}

// moe_experts version 5 reads y's old value only with accumulate 1 (the loader's read-before-write check asks for a
// write before it then); versions 1-4 always add into y.
TEST_CASE("ops: moe_experts reads its output's old value with accumulate 1 only") {
  const ModelInfo model;
  const std::vector<TensorInfo> t;
  for (uint32_t version : {1u, 2u, 3u, 4u, 5u}) {
    CAPTURE(version);
    const OpDef* experts = builtin_ops().find("moe_experts", version);
    REQUIRE(experts);
    REQUIRE(bool(experts->reads_output));
    for (int64_t accumulate : {0, 1}) {
      LaunchInfo x;
      x.int_attrs.assign(size_t(experts->n_int_attrs), 0);
      if (version == 5) x.int_attrs[3] = accumulate;
      CHECK(experts->reads_output(OpLaunch(x, t, model), 0) == (version < 5 || accumulate == 1));
      CHECK_FALSE(experts->reads_output(OpLaunch(x, t, model), 1));  // (ws)
    }
  }
}

// A token routed to more than kMaxMoeTopK experts is refused in a plan (the compiler refuses the
// config too): an outside test's re-sealed plans routed to 4096 experts (34 s a token) and read
// 2^20 ids from a cache.
TEST_CASE("ops: moe_route and moe_experts refuse top_k past 64 or the experts") {
  const ModelInfo model;
  for (const int64_t k : {64, 65}) {
    CAPTURE(k);
    const int64_t E = 128, dim = 8, ffn = 4;
    const std::vector<TensorInfo> t = {tensor("h", DType::F32, {1, dim}, Region::kArena, 0),
                                       tensor("gate", DType::F32, {E, dim}, Region::kWeights, 0),
                                       tensor("ids", DType::I32, {1, k}, Region::kArena, 4096),
                                       tensor("weights", DType::F32, {1, k}, Region::kArena, 8192),
                                       tensor("w_gu", DType::F32, {E * 2 * ffn, dim}, Region::kWeights, 65536),
                                       tensor("w_down", DType::F32, {E * dim, ffn}, Region::kWeights, 131072),
                                       tensor("y", DType::F32, {1, dim}, Region::kArena, 12288),
                                       tensor("ws", DType::F32, {k, ffn}, Region::kArena, 16384)};
    const OpDef* route = nullptr;
    for (const OpDef* op : builtin_ops().ops())
      if (std::string(op->name) == "moe_route" && (!route || op->version > route->version)) route = op;
    REQUIRE(route);
    LaunchInfo r;
    r.inputs = {0, 1};
    r.inputs.resize(size_t(route->n_inputs), kNoTensor);
    r.outputs = {2, 3};
    r.int_attrs = {0, 0, 1, 1, 0};
    r.int_attrs.resize(size_t(route->n_int_attrs), 0);
    r.float_attrs.assign(size_t(route->n_float_attrs), 1.0);
    if (r.float_attrs.size() > 2) r.float_attrs[2] = 0.0;  // (jitter_eps: the sparsemixer's alone)
    uint64_t scratch = 0;
    const Status rs = validate_launch(*route, r, t, model, &scratch);
    const OpDef* experts = builtin_ops().find("moe_experts", 1);
    REQUIRE(experts);
    LaunchInfo x;
    x.inputs = {0, 2, 3, 4, 5};
    x.inputs.resize(size_t(experts->n_inputs), kNoTensor);
    x.outputs = {6, 7};
    x.int_attrs.assign(size_t(experts->n_int_attrs), 0);
    x.float_attrs.assign(size_t(experts->n_float_attrs), 0.0);
    const Status xs = validate_launch(*experts, x, t, model, &scratch);
    if (k == 64) {
      CHECK_MESSAGE(rs.is_ok(), rs.message());
      CHECK_MESSAGE(xs.is_ok(), xs.message());
    } else {
      CHECK(rs.message().find("top_k is not in [1, 64]") != std::string::npos);
      CHECK(xs.message().find("top_k 65 is not in [1, 64]") != std::string::npos);
    }
  }
}
