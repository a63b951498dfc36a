// Plans edited field by field behind valid checksums (tests/plan_mutate.h): every field of every
// table of a LLaMA plan with its tokenizer, a DeepSeek MoE plan and a text-to-image loop plan is
// set to the edges of its type. Each mutant is refused by the loader with an error, or it runs
// (generate, or the whole text-to-image pipeline) to completion or to an error, never a crash;
// CI runs this under ASan and UBSan, where a read or write out of bounds fails it.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <map>

#include "compiler/compile.h"
#include "plan_mutate.h"
#include "plan_run.h"
#include "runtime/plan.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

std::vector<uint8_t> compile_bytes(CompileOptions o, const TempDir& d, const std::string& name) {
  o.output = d / name;
  REQUIRE(kiln::test::compile_error(o).empty());
  return kiln::test::read_bytes(o.output);
}

// Sets every site (of each field of each table; launches by their kernel, `per_group` of each)
// to each of its edge values, re-seals the plan, and loads (then runs) it.
void mutate_all(const std::vector<uint8_t>& plan, size_t per_group, const char* what) {
  const std::vector<uint8_t> schema = kiln::test::read_bytes(KILN_PLAN_BFBS);
  const kiln::test::PlanFields fields(schema, plan);
  auto root = Plan::load_memory(plan.data(), plan.size());
  REQUIRE(root.is_ok());
  const Plan& base = *root.value();
  std::map<std::string, size_t> groups;
  size_t mutants = 0, loaded = 0;
  std::vector<uint8_t> b = plan;
  double slowest = 0;
  for (const auto& site : fields.sites()) {
    // A launch's fields group by its kernel: every attribute of every op is reached.
    std::string key;  // the path without its indices, and the kernel of a launch's field
    size_t program = 0, launch = 0;
    bool in_launch = false;
    for (size_t i = 0; i < site.path.size(); ++i) {
      if (site.path[i] != '[') {
        key += site.path[i];
        continue;
      }
      const size_t end = site.path.find(']', i);
      const size_t n = std::stoul(site.path.substr(i + 1, end - i - 1));
      auto ends_with = [&](const char* w) {
        const size_t k = std::strlen(w);
        return key.size() >= k && key.compare(key.size() - k, k, w) == 0;
      };
      // Tensors group by region and programs by name, so the arena, KV and state tensors and
      // the loop program are mutated too, not only the first entries.
      if (ends_with("plan.tensors") && n < base.tensors().size())
        key += std::string("[") + region_name(base.tensors()[n].region) + "]";
      else if (ends_with("plan.programs") && n < base.programs().size())
        key += "[" + base.programs()[n].name + "]", program = n;
      else key += "[]";
      if (ends_with("launches[]")) launch = n, in_launch = true;
      i = end;
    }
    if (in_launch) key += std::string("|") + base.kernels()[base.programs()[program].launches[launch].kernel]->name;
    if (++groups[key] > per_group) continue;
    for (const auto& [i, f] : kiln::test::mutations(plan.data(), site)) {
      // Edited in place and restored afterwards (the site's 8 bytes and the header's hashes).
      kiln::test::write_site(b.data(), site, i, f);
      const size_t n = std::min<size_t>(8, b.size() - site.offset);
      if (std::memcmp(b.data() + site.offset, plan.data() + site.offset, n) == 0) continue;
      kiln::test::rehash(b);
      struct Restore {
        std::vector<uint8_t>& b;
        const std::vector<uint8_t>& plan;
        size_t at, n;
        ~Restore() {
          std::memcpy(b.data() + at, plan.data() + at, n);
          std::memcpy(b.data(), plan.data(), sizeof(PlanHeader));
        }
      } restore{b, plan, size_t(site.offset), n};
      ++mutants;
      const auto t0 = std::chrono::steady_clock::now();
      auto p = Plan::load_memory(b.data(), b.size());
      if (p.is_ok()) {
        ++loaded;
        CAPTURE(site.path);
        kiln::test::run_plan(p.value());
      } else {
        CHECK_MESSAGE(!p.status().message().empty(), site.path);
      }
      slowest = std::max(slowest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  MESSAGE(std::string(what) << ": " << fields.sites().size() << " fields, " << groups.size() << " kinds, " << mutants
                            << " mutants, " << loaded << " verified and ran; slowest " << slowest << " s");
  CHECK(mutants > 100);
  CHECK(loaded < mutants);  // the verifier refuses most edits
  // A bound on hanging, not a speed target: the slowest mutant loads and runs in well under this.
  CHECK(slowest < 30.0);
}

}  // namespace

TEST_CASE("plan mutants: a LLaMA plan with its tokenizer, every field set to edge values, is refused or runs") {
  TempDir d;
  CompileOptions o;
  o.model_dir = d / "m";
  REQUIRE(::mkdir(o.model_dir.c_str(), 0700) == 0);
  kiln::test::write_tiny_llama_with_tokenizer(o.model_dir);
  o.max_seq = 8;
  o.chunk = 4;
  o.target = "all";  // the fused ops too
  mutate_all(compile_bytes(o, d, "llama.kplan"), 3, "LLaMA");
}

// A tiny tied LLaMA compiled with --quantize `scheme` --quantize-head (the head an i8, i4 or f8 copy),
// every field mutated.
static void mutate_quantized_llama(const std::string& scheme, int64_t group, const kiln::test::TinyLlama& t,
                                   bool asymmetric = false) {
  TempDir d;
  CompileOptions o;
  o.model_dir = d / "m";
  REQUIRE(::mkdir(o.model_dir.c_str(), 0700) == 0);
  kiln::test::write_tiny_llama(o.model_dir, t);
  o.max_seq = 8;
  o.chunk = 4;
  o.quantize = scheme;
  o.group_size = group;
  o.quantize_head = true;
  o.asymmetric = asymmetric;
  mutate_all(compile_bytes(o, d, scheme + ".kplan"), 3,
             (scheme + (asymmetric ? " asymmetric" : "") + " LLaMA").c_str());
}

TEST_CASE(
    "plan mutants: an int8 LLaMA plan (matmul version 2, i8 weights, their scales, a tied head's i8 copy) is refused or runs") {
  mutate_quantized_llama("int8", 0, {});
}

TEST_CASE(
    "plan mutants: an int4 LLaMA plan (matmul version 2, i4 weights, their group scales, a tied head's i4 copy) is refused or runs") {
  kiln::test::TinyLlama t;  // int4 rows are whole blocks of 32 values
  t.hidden = 32;
  t.ffn = 64;
  mutate_quantized_llama("int4", 32, t);
}

TEST_CASE(
    "plan mutants: an asymmetric int4 LLaMA plan (matmul version 4, i4 weights, scales, zero points) is refused "
    "or runs") {
  kiln::test::TinyLlama t;
  t.hidden = 32;
  t.ffn = 64;
  mutate_quantized_llama("int4", 32, t, true);
}

TEST_CASE(
    "plan mutants: an fp8 LLaMA plan (matmul version 3, f8e4m3 weights, their scales and group, a tied head's f8 copy) is refused or runs") {
  kiln::test::TinyLlama t;
  t.hidden = 32;
  t.ffn = 64;
  mutate_quantized_llama("fp8", 0, t);
}

namespace {

// A DeepSeek fixture (tests/fixtures/<set>/<name>) compiled (with `dtype`; "": its own) and mutated.
void mutate_deepseek(const std::string& name, const std::string& set, const std::string& dtype, const char* what) {
  TempDir d;
  CompileOptions o;
  o.model_dir = kiln::test::fixture(name, set);
  o.max_seq = 8;
  o.chunk = 4;
  o.dtype = dtype;
  mutate_all(compile_bytes(o, d, name + ".kplan"), 2, what);
}

}  // namespace

TEST_CASE("plan mutants: a DeepSeek MoE plan, every field set to edge values, is refused or runs") {
  mutate_deepseek("v3_noaux", "deepseek", "bf16", "DeepSeek");
}

TEST_CASE(
    "plan mutants: DeepSeek's FP8 kept as shipped (matmul version 3 in groups, moe_experts version 2) is refused or "
    "runs") {
  mutate_deepseek("ds_v3_fp8_b32", "quantized", "", "DeepSeek FP8");
}

TEST_CASE(
    "plan mutants: DeepSeek's asymmetric int4 GPTQ as shipped (head_matmul version 2, moe_experts with zero points) "
    "is refused or runs") {
  mutate_deepseek("ds_gptq_w4g32_asym_f32", "quantized", "", "DeepSeek int4 asymmetric");
}

TEST_CASE("plan mutants: a text-to-image loop plan, every field set to edge values, is refused or runs") {
  TempDir d;
  CompileOptions o;
  o.model_dir = kiln::test::fixtures_root() + "/diffusion/sd15_tiny/pipeline";
  o.height = 8;  // the smallest image: each verified mutant runs the whole pipeline
  o.width = 8;
  o.steps = 1;
  o.guidance = 1.0;  // one prompt row: half the work per verified mutant
  o.dtype = "f32";
  o.target = "cpu";
  mutate_all(compile_bytes(o, d, "sd.kplan"), 1, "text-to-image");
}
