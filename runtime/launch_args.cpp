// Turns a validated launch into its kernel's argument struct (kernels/<op>.h) with resolved
// pointers: host pointers for the CPU backend, device pointers for CUDA. Shapes come from the
// tensor table, which the loader has already checked against each kernel's contract.
#include "runtime/launch_args.h"

namespace kiln {

Result<LaunchArgs> make_launch_args(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& t,
                                    const std::vector<void*>& ptrs) {
  auto in = [&](int i) -> const TensorInfo& { return t[l.inputs[size_t(i)]]; };
  auto inp = [&](int i) -> void* { return l.inputs[size_t(i)] == kNoTensor ? nullptr : ptrs[l.inputs[size_t(i)]]; };
  auto out = [&](int i) -> const TensorInfo& { return t[l.outputs[size_t(i)]]; };
  auto outp = [&](int i) -> void* { return ptrs[l.outputs[size_t(i)]]; };
  auto f32 = [](void* p) { return static_cast<float*>(p); };
  auto i32 = [](void* p) { return static_cast<const int32_t*>(p); };

  if (&spec == &kEmbeddingSpec) {
    EmbeddingArgs a{i32(inp(0)), inp(1), in(1).dtype, f32(outp(0)), in(0).numel(), in(1).shape[0], in(1).shape[1]};
    return LaunchArgs(a);
  }
  if (&spec == &kRmsNormSpec) {
    RmsNormArgs a{f32(inp(0)), inp(1), in(1).dtype, f32(outp(0)), in(0).shape[0], in(0).shape[1], float(l.float_attrs[0])};
    return LaunchArgs(a);
  }
  if (&spec == &kMatmulSpec) {
    const bool has_bias = l.inputs[2] != kNoTensor;
    MatmulArgs a{f32(inp(0)), inp(1), in(1).dtype, inp(2), has_bias ? in(2).dtype : DType::F32, f32(outp(0)),
                 in(0).shape[0], in(0).shape[1], in(1).shape[0], l.int_attrs[0] != 0,
                 i32(inp(3)), l.inputs[3] == kNoTensor ? 1 : in(3).shape[0]};
    return LaunchArgs(a);
  }
  if (&spec == &kFusedMatmulSpec) {
    const bool has_bias = l.inputs[3] != kNoTensor, swiglu = l.int_attrs[1] != 0;
    const MatmulArgs m{f32(inp(0)), inp(2), in(2).dtype, inp(3), has_bias ? in(3).dtype : DType::F32,
                       swiglu ? nullptr : f32(outp(0)), in(0).shape[0], in(0).shape[1], in(2).shape[0],
                       l.int_attrs[0] != 0, i32(inp(4)), l.inputs[4] == kNoTensor ? 1 : in(4).shape[0]};
    const bool norm = l.inputs[1] != kNoTensor;
    FusedMatmulArgs a{m, inp(1), norm ? in(1).dtype : DType::F32, float(l.float_attrs[0]), swiglu ? f32(outp(0)) : nullptr};
    return LaunchArgs(a);
  }
  if (&spec == &kRopeKvWriteSpec) {
    const int64_t b = out(1).shape[0], h = l.int_attrs[0], kvh = l.int_attrs[1], hd = l.int_attrs[2];
    const RopeArgs r{f32(outp(0)), f32(inp(0)), i32(inp(1)), b, in(2).shape[0] / b, in(2).shape[1], h + kvh, hd,
                     float(l.float_attrs[0])};
    const KvWriteArgs w{f32(inp(2)), i32(inp(1)), i32(inp(3)), outp(1), outp(2), out(1).dtype, b, in(2).shape[0] / b,
                        out(1).shape[1], h, kvh, hd};
    return LaunchArgs(RopeKvWriteArgs{r, w});
  }
  if (&spec == &kRopeSpec) {
    const int64_t b = in(1).shape[0];
    RopeArgs a{f32(outp(0)), f32(inp(0)), i32(inp(1)), b, in(2).shape[0] / b, in(2).shape[1],
               l.int_attrs[0], l.int_attrs[1], float(l.float_attrs[0])};
    return LaunchArgs(a);
  }
  if (&spec == &kKvWriteSpec) {
    const int64_t b = out(0).shape[0];
    KvWriteArgs a{f32(inp(0)), i32(inp(1)), i32(inp(2)), outp(0), outp(1), out(0).dtype, b, in(0).shape[0] / b,
                  out(0).shape[1], l.int_attrs[0], l.int_attrs[1], l.int_attrs[2]};
    return LaunchArgs(a);
  }
  if (&spec == &kAttentionSpec) {
    const int64_t b = in(1).shape[0];
    AttentionArgs a{f32(inp(0)), inp(1), inp(2), in(1).dtype, i32(inp(3)), i32(inp(4)), f32(outp(0)), b,
                    in(0).shape[0] / b, in(1).shape[1], l.int_attrs[0], l.int_attrs[1], l.int_attrs[2],
                    float(l.float_attrs[0])};
    return LaunchArgs(a);
  }
  if (&spec == &kSampleSpec) {
    const int64_t b = in(1).shape[0];
    SampleArgs a{f32(inp(0)), i32(inp(1)), static_cast<const SampleParams*>(inp(2)), static_cast<int32_t*>(outp(0)), b,
                 in(0).shape[0] / b, in(0).shape[1]};
    return LaunchArgs(a);
  }
  if (&spec == &kSwigluSpec) {
    SwigluArgs a{f32(inp(0)), f32(outp(0)), in(0).shape[0], in(0).shape[1] / 2};
    return LaunchArgs(a);
  }
  auto batch_of = [&](int i) -> int64_t { return l.inputs[size_t(i)] == kNoTensor ? 1 : in(i).shape[0]; };
  if (&spec == &kHeadMatmulSpec) {
    HeadMatmulArgs a{f32(inp(0)), inp(1), in(1).dtype, f32(outp(0)), in(0).shape[0], in(1).shape[0], in(1).shape[2],
                     in(1).shape[1], i32(inp(2)), batch_of(2)};
    return LaunchArgs(a);
  }
  if (&spec == &kMlaKvWriteSpec) {
    const int64_t b = out(0).shape[0];
    MlaKvWriteArgs a{f32(inp(0)), f32(inp(1)), i32(inp(2)), i32(inp(3)), outp(0), out(0).dtype, b, in(0).shape[0] / b,
                     out(0).shape[1], in(0).shape[1], in(1).shape[1]};
    return LaunchArgs(a);
  }
  if (&spec == &kMlaAttentionSpec) {
    const int64_t b = in(2).shape[0];
    MlaAttentionArgs a{f32(inp(0)), f32(inp(1)), inp(2), in(2).dtype, i32(inp(3)), i32(inp(4)), f32(outp(0)), b,
                       in(0).shape[0] / b, in(2).shape[1], l.int_attrs[0], l.int_attrs[1], l.int_attrs[2],
                       float(l.float_attrs[0])};
    return LaunchArgs(a);
  }
  if (&spec == &kMoeRouteSpec) {
    const bool has_bias = l.inputs[2] != kNoTensor;
    MoeRouteArgs a{f32(inp(0)), inp(1), in(1).dtype, inp(2), has_bias ? in(2).dtype : DType::F32,
                   static_cast<int32_t*>(outp(0)), f32(outp(1)), in(0).shape[0], in(0).shape[1], in(1).shape[0],
                   out(0).shape[1], MoeTopk(l.int_attrs[0]), MoeScoring(l.int_attrs[1]), l.int_attrs[2], l.int_attrs[3],
                   l.int_attrs[4] != 0, float(l.float_attrs[0]), i32(inp(3)), batch_of(3)};
    return LaunchArgs(a);
  }
  if (&spec == &kMoeExpertsSpec) {
    const int64_t dim = in(0).shape[1];
    MoeExpertsArgs a{f32(inp(0)), i32(inp(1)), f32(inp(2)), inp(3), inp(4), in(3).dtype, f32(outp(0)), f32(outp(1)),
                     in(0).shape[0], dim, in(4).shape[0] / dim, in(4).shape[1], in(1).shape[1], i32(inp(5)), batch_of(5)};
    return LaunchArgs(a);
  }
  // --- diffusion
  auto ia = [&](int i) { return l.int_attrs[size_t(i)]; };
  auto fa = [&](int i) { return float(l.float_attrs[size_t(i)]); };
  if (&spec == &kLayerNormSpec) {
    LayerNormArgs a{f32(inp(0)), inp(1), inp(2), in(1).dtype, f32(outp(0)), in(0).shape[0], in(0).shape[1], fa(0)};
    return LaunchArgs(a);
  }
  if (&spec == &kGroupNormSpec) {
    GroupNormArgs a{f32(inp(0)), inp(1), inp(2), in(1).dtype, f32(outp(0)), in(0).shape[0], in(0).shape[1],
                    in(0).shape[2], ia(0), ia(1) != 0, fa(0)};
    return LaunchArgs(a);
  }
  if (&spec == &kConv2dSpec) {
    const auto& xs = in(0).shape;
    const auto& ws = in(1).shape;
    Conv2dArgs a{f32(inp(0)), inp(1), in(1).dtype, inp(2), f32(inp(3)), f32(inp(4)), f32(outp(0)), xs[0], xs[1], xs[2],
                 xs[3], ws[0], ws[1], ws[2], ia(0), ia(1), ia(2) != 0, fa(0), out(0).shape[1], out(0).shape[2]};
    return LaunchArgs(a);
  }
  if (&spec == &kActivationSpec) {
    ActivationArgs a{f32(inp(0)), f32(outp(0)), in(0).numel(), Activation(ia(0))};
    return LaunchArgs(a);
  }
  if (&spec == &kGegluSpec) {
    GegluArgs a{f32(inp(0)), f32(outp(0)), in(0).shape[0], in(0).shape[1] / 2};
    return LaunchArgs(a);
  }
  if (&spec == &kAddSpec) {
    const int64_t cols = out(0).shape.back();
    AddArgs a{f32(inp(0)), inp(1), in(1).dtype, f32(outp(0)), out(0).numel() / cols, cols, in(1).numel() / cols, fa(0)};
    return LaunchArgs(a);
  }
  if (&spec == &kConcatSpec) {
    ConcatArgs a{f32(inp(0)), f32(inp(1)), f32(outp(0)), in(0).shape[0], in(0).shape[1], in(1).shape[1]};
    return LaunchArgs(a);
  }
  if (&spec == &kSdpaSpec) {
    const int64_t b = ia(0);
    SdpaArgs a{f32(inp(0)), f32(inp(1)), f32(outp(0)), b, in(0).shape[0] / b, in(1).shape[0] / b, in(0).shape[1],
               in(1).shape[1], ia(1), ia(2), ia(3), ia(4), ia(5), ia(6) != 0, fa(0)};
    return LaunchArgs(a);
  }
  if (&spec == &kTimestepEmbeddingSpec) {
    TimestepEmbeddingArgs a{f32(inp(0)), in(0).shape[0], i32(inp(1)), f32(outp(0)), out(0).shape[0], out(0).shape[1],
                            ia(0) != 0, fa(0), fa(1)};
    return LaunchArgs(a);
  }
  if (&spec == &kSamplerInputSpec) {
    const int64_t n = in(0).shape[0];
    SamplerInputArgs a{f32(inp(0)), f32(inp(1)), in(1).shape[0], i32(inp(2)), f32(outp(0)), n, out(0).shape[0] / n};
    return LaunchArgs(a);
  }
  if (&spec == &kSamplerStepSpec) {
    const int64_t n = out(0).shape[0];
    SamplerStepArgs a{f32(inp(0)), f32(inp(1)), in(1).shape[0], i32(inp(2)), f32(inp(3)), f32(outp(0)), f32(outp(1)),
                      n, in(0).shape[0] / n, fa(0)};
    return LaunchArgs(a);
  }
  if (&spec == &kNormalNoiseSpec) {
    NormalNoiseArgs a{i32(inp(0)), i32(inp(1)), f32(outp(0)), out(0).shape[0], ia(0)};
    return LaunchArgs(a);
  }
  return unsupported(std::string("no argument binding for kernel '") + spec.name + "'");
}


}  // namespace kiln
