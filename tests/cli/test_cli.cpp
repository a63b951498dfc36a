// The kiln CLI as a user runs it: compile, inspect, eval, generate, and the exit codes and
// single-line errors of bad invocations.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compiler/safetensors.h"
#include "runtime/plan.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

const std::string kCli = KILN_CLI_PATH;

std::string last_line(const std::string& s) {
  std::istringstream in(s);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

int count_words(const std::string& s) {
  std::istringstream in(s);
  std::string w;
  int n = 0;
  while (in >> w) ++n;
  return n;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// `kiln generate PLAN --ids PROMPT --output-ids` continues the reference's prompt greedily into its
// greedy ids.
void check_cli_greedy(const std::string& plan, const kiln::test::Reference& ref) {
  std::string ids, expect, out;
  for (int32_t t : ref.prompt_ids) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  for (int32_t t : ref.greedy_ids) expect += (expect.empty() ? "" : " ") + std::to_string(t);
  REQUIRE(kiln::test::run_command(kCli + " generate " + plan + " --ids " + ids + " --max-new-tokens " +
                                      std::to_string(ref.greedy_ids.size() - ref.prompt_ids.size()) +
                                      " --output-ids 2>/dev/null",
                                  &out) == 0);
  CHECK(last_line(out) == expect);
}

// `kiln compile MODEL -o DIR/all.kplan --target all OPTIONS` keeps quantized weights for CUDA and the
// CPU: inspect shows both targets and the `quantized` line, and the plan generates ref's tokens (here
// on the CPU; on a GPU machine with kiln's quantized CUDA kernels).
void check_cli_cuda_target(const std::string& model, const std::string& dir, const std::string& options,
                           const std::string& quantized, const kiln::test::Reference& ref) {
  CAPTURE(options);
  std::string out;
  REQUIRE_MESSAGE(kiln::test::run_command(
                      kCli + " compile " + model + " -o " + dir + "/all.kplan --target all " + options, &out) == 0,
                  out);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + dir + "/all.kplan", &out) == 0);
  CHECK(out.find("targets    cpu, cuda") != std::string::npos);
  CHECK(out.find(quantized) != std::string::npos);
  check_cli_greedy(dir + "/all.kplan", ref);
}

// `kiln compile MODEL -o DIR/x.kplan OPTIONS` fails with one "kiln: error: " line that contains
// `expect`, and writes no plan.
void check_cli_compile_refused(const std::string& model, const std::string& dir, const std::string& options,
                               const std::string& expect = "") {
  CAPTURE(options);
  std::string out;
  CHECK(kiln::test::run_command(kCli + " compile " + model + " -o " + dir + "/x.kplan " + options, &out) != 0);
  CHECK(out.find("kiln: error: ") == 0);
  CHECK(out.find(expect) != std::string::npos);
  CHECK(count_lines(out) == 1);
  CHECK_FALSE(kiln::test::run_command("test -e " + dir + "/x.kplan", &out) == 0);
}

}  // namespace

TEST_CASE("cli: compile, inspect, eval and generate a fixture end to end") {
  TempDir d;
  const std::string model = kiln::test::fixture("llama3_rope_f32");
  const auto ref = kiln::test::load_reference(model);
  std::string out;
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "m.kplan") +
                                              " --dtype f32 --max-seq 48 --batch 1 --chunk 8",
                                          &out) == 0,
                  out);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "m.kplan") + " --tensors", &out) == 0);
  CHECK(out.find("verified") != std::string::npos);
  CHECK(out.find("max_seq 48") != std::string::npos);
  CHECK(out.find("program    prefill") != std::string::npos);
  CHECK(out.find("KV cache") != std::string::npos);
  CHECK(out.find("self_attn.qkv_proj.weight") != std::string::npos);

  // eval: input_ids as int64 [2, 20] → logits float32 [2, 20, 256]
  {
    std::vector<int64_t> ids(ref.input_ids.begin(), ref.input_ids.end());
    write_safetensors(d / "in.safetensors",
                      {{"input_ids", DType::I64, {ref.rows, ref.tokens}, ids.data(), ids.size() * 8}});
  }
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " eval " + (d / "m.kplan") + " --input " + (d / "in.safetensors") +
                                              " --output " + (d / "out.safetensors"),
                                          &out) == 0,
                  out);
  auto res = SafetensorsFile::open(d / "out.safetensors");
  const StTensor& lg = res->tensors().at("logits");
  CHECK(lg.dtype == DType::F32);
  CHECK(lg.shape == std::vector<int64_t>{ref.rows, ref.tokens, ref.vocab});
  CHECK(kiln::test::rel_l2(reinterpret_cast<const float*>(lg.data), ref.logits.data(), ref.logits.size()) <= 1e-4);

  // generate: the last line is the prompt followed by the generated ids.
  std::string ids;
  for (int32_t t : ref.prompt_ids) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const int64_t n_new = int64_t(ref.greedy_ids.size() - ref.prompt_ids.size());
  REQUIRE(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") + " --ids " + ids + " --max-new-tokens " +
                                      std::to_string(n_new) + " --temperature 0 --output-ids 2>/dev/null",
                                  &out) == 0);
  std::string expect;
  for (int32_t t : ref.greedy_ids) expect += (expect.empty() ? "" : " ") + std::to_string(t);
  CHECK(last_line(out) == expect);
  // Seeded sampling is reproducible.
  std::string s1, s2;
  const std::string sample =
      kCli + " generate " + (d / "m.kplan") + " --ids " + ids +
      " --max-new-tokens 10 --temperature 0.9 --top-k 20 --top-p 0.95 --seed 5 --output-ids 2>/dev/null";
  REQUIRE(kiln::test::run_command(sample, &s1) == 0);
  REQUIRE(kiln::test::run_command(sample, &s2) == 0);
  CHECK(last_line(s1) == last_line(s2));
  // Decode steps in flight change nothing the user sees, greedy or sampled.
  REQUIRE(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") + " --ids " + ids + " --max-new-tokens " +
                                      std::to_string(n_new) + " --in-flight 5 --output-ids 2>/dev/null",
                                  &out) == 0);
  CHECK(last_line(out) == expect);
  REQUIRE(kiln::test::run_command(sample + " --in-flight 3", &s2) == 0);
  CHECK(last_line(s1) == last_line(s2));
  CHECK(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") + " --ids " + ids + " --in-flight 17", &out) !=
        0);
  CHECK(out.find("--in-flight") != std::string::npos);
}

TEST_CASE("cli: compile --lora merges weighted adapters and inspect lists them") {
  TempDir d;
  const std::string fx = kiln::test::fixtures_root() + "/lora/two_adapters";
  std::string out;
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + kiln::test::fixture("tied_f32") + " --lora " + fx +
                                  "/a:0.7 --lora " + fx + "/b:0.3 -o " + (d / "m.kplan") + " --dtype f32 --max-seq 32",
                              &out) == 0,
      out);
  CHECK(out.find("merged LoRA adapter a (weight 0.7") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "m.kplan"), &out) == 0);
  CHECK(out.find("adapter    a, weight 0.7") != std::string::npos);
  CHECK(out.find("adapter    b, weight 0.3") != std::string::npos);
  check_cli_greedy(d / "m.kplan", kiln::test::load_reference(fx));
  CHECK(kiln::test::run_command(kCli + " compile " + kiln::test::fixture("gqa_f32") + " --lora " +
                                    kiln::test::fixtures_root() + "/lora/wrong_shape/adapter -o " + (d / "x.kplan"),
                                &out) != 0);
  CHECK(out.find("kiln: error: ") == 0);
  CHECK_FALSE(kiln::test::run_command("test -e " + (d / "x.kplan"), &out) == 0);
}

TEST_CASE("cli: compile --quantize int8 writes a CPU plan of i8 weights that generates transformers' tokens") {
  TempDir d;
  const std::string model = kiln::test::fixture("gqa_f32");
  std::string out;
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "q.kplan") +
                                              " --quantize int8 --dtype f32 --max-seq 32",
                                          &out) == 0,
                  out);
  CHECK(out.find("int8 weights (per-row scales): 8 matmul weights") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "q.kplan"), &out) == 0);
  CHECK(out.find("targets    cpu\n") != std::string::npos);
  CHECK(out.find(", i8 ") != std::string::npos);
  CHECK(out.find("quantized  i8, a scale per row: 8 weights") != std::string::npos);
  check_cli_greedy(d / "q.kplan", kiln::test::load_reference(model, "reference_int8.safetensors"));
  const std::pair<const char*, const char*> bad[] = {
      {"--quantize int4 --group-size 48", "--group-size 48 is not a positive multiple of 32"},
      {"--quantize-head", "--quantize-head needs --quantize int8, int4 or fp8"},
      {"--quantize int8 --group-size 32", "--group-size is for --quantize int4 (int8 has one scale a row)"},
      {"--group-size 32", "--group-size is for --quantize int4 (--quantize was not given)"},
      {"--quantize fp4", "--quantize 'fp4' is not one of int8, int4, fp8, none"},
      // (typed, '' and 0 are refused: the compiler reads them as not given)
      {"--quantize ''", "--quantize '' is not one of int8, int4, fp8, none"},
      {"--quantize int4 --group-size 0", "--group-size 0 is not a positive multiple of 32"},
      {"--quantize int4 --group-size 00", "--group-size 00 is not a positive multiple of 32"},
      {"--quantize int4 --group-size ''", "--group-size '' is not a number"},
      {"--quantize int8 --group-size 0", "--group-size is for --quantize int4 (int8 has one scale a row)"},
      // (and every number option's '', and the zeros that read as "the default")
      {"--max-seq ''", "--max-seq '' is not a number"},
      {"--max-seq 0", "--max-seq 0 is not a positive number"},
      {"--chunk 0", "--chunk 0 is not a positive number"},
      // (CLI11 reads a leading 0 as octal: 064 would be 52)
      {"--max-seq 064", "--max-seq 064 has a leading 0, which would read it as octal"},
      {"--guidance ''", "--guidance '' is not a number"},
      {"--quantize int8 --asymmetric", "--asymmetric is for --quantize int4"}};
  for (const auto& [options, expect] : bad) check_cli_compile_refused(model, d.path(), options, expect);
  // --target all (or cuda) keeps them i8, for kiln's quantized CUDA kernels too.
  check_cli_cuda_target(model, d.path(), "--quantize int8 --dtype f32 --max-seq 32",
                        "quantized  i8, a scale per row: 8 weights",
                        kiln::test::load_reference(model, "reference_int8.safetensors"));
}

TEST_CASE("cli: compile --quantize int4 writes a CPU plan of i4 weights that generates transformers' tokens") {
  TempDir d;
  const std::string model = kiln::test::fixture("gqa_f32");
  std::string out;
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "q4.kplan") +
                                              " --quantize int4 --group-size 32 --dtype f32 --max-seq 32",
                                          &out) == 0,
                  out);
  CHECK(out.find("int4 weights (symmetric, a scale per 32 values): 8 matmul weights") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "q4.kplan"), &out) == 0);
  CHECK(out.find("targets    cpu\n") != std::string::npos);
  CHECK(out.find(", i4 ") != std::string::npos);
  // 2 layers' qkv (128 x 64), o (64 x 64), gate|up (320 x 64) and down (64 x 160): 86,016 values, two a
  // byte, and one f32 scale per 32 of them.
  CHECK(out.find("quantized  i4, a scale per 32 values: 8 weights, 42.00 KiB + 10.50 KiB of f32 scales") !=
        std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "q4.kplan") + " --json 2>/dev/null", &out) == 0);
  const nlohmann::json q = nlohmann::json::parse(out)["quantized"];
  REQUIRE(q.size() == 1);
  CHECK(q[0]["dtype"] == "i4");
  CHECK(q[0]["group"] == 32);
  CHECK(q[0]["weights"] == 8);
  CHECK(q[0]["bytes"] == 43008);
  CHECK(q[0]["scale_bytes"] == 10752);
  check_cli_greedy(d / "q4.kplan", kiln::test::load_reference(model, "reference_int4_g32.safetensors"));
  // Asymmetric: a zero point per group too.
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "q4a.kplan") +
                                              " --quantize int4 --asymmetric --group-size 32 --dtype f32 --max-seq 32",
                                          &out) == 0,
                  out);
  CHECK(out.find("int4 weights (asymmetric, a scale and a zero point per 32 values): 8 matmul weights") !=
        std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "q4a.kplan"), &out) == 0);
  // (2 layers' 86,016 values: 2,688 groups of 32, a byte of zero point each)
  CHECK(out.find("quantized  i4 asymmetric, a scale and a zero point per 32 values: 8 weights, 42.00 KiB + 10.50 KiB "
                 "of f32 scales + 2.62 KiB of i8 zero points") != std::string::npos);
  check_cli_greedy(d / "q4a.kplan", kiln::test::load_reference(model, "reference_int4a_g32.safetensors"));
  // Mixtral's routed experts take zero points too (moe_experts version 3), and inspect counts them: 2
  // layers' qkv, o, and experts' gate|up and down, 270,336 values, a byte of zero point per 32.
  const std::string mx = kiln::test::fixture("top2_f32", "mixtral");
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + mx + " -o " + (d / "mx.kplan") +
                                              " --quantize int4 --asymmetric --group-size 32 --dtype f32 --max-seq 32",
                                          &out) == 0,
                  out);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "mx.kplan") + " --json", &out) == 0);
  const nlohmann::json mq = nlohmann::json::parse(out)["quantized"];
  REQUIRE(mq.size() == 1);
  CHECK(mq[0]["asymmetric"] == true);
  CHECK(mq[0]["weights"] == 8);
  CHECK(mq[0]["zero_bytes"] == 8448);
  // A W4A16 checkpoint as shipped.
  const std::string ct = kiln::test::fixture("ct_w4a16_g32_f32", "quantized");
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + ct + " -o " + (d / "w4.kplan") + " --max-seq 32", &out) == 0, out);
  CHECK(out.find("8 matmul weights (8 as the checkpoint ships them, compressed-tensors)") != std::string::npos);
  check_cli_greedy(d / "w4.kplan", kiln::test::load_reference(ct));
  check_cli_cuda_target(ct, d.path(), "--max-seq 32", "quantized  i4, a scale per 32 values: 8 weights",
                        kiln::test::load_reference(ct));
  check_cli_compile_refused(ct, d.path(), "--group-size 32", "--group-size is for --quantize int4");
}

TEST_CASE("cli: a compressed-tensors int8 checkpoint compiles as shipped and generates transformers' tokens") {
  TempDir d;
  const std::string model = kiln::test::fixture("ct_w8a16_f32", "quantized");
  std::string out;
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "ct.kplan") + " --max-seq 32", &out) == 0,
      out);
  CHECK(out.find("int8 weights (per-row scales): 8 matmul weights (8 as the checkpoint ships them") !=
        std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "ct.kplan"), &out) == 0);
  CHECK(out.find("targets    cpu\n") != std::string::npos);
  CHECK(out.find(", i8 ") != std::string::npos);
  check_cli_greedy(d / "ct.kplan", kiln::test::load_reference(model));
  check_cli_cuda_target(model, d.path(), "--max-seq 32", "quantized  i8, a scale per row: 8 weights",
                        kiln::test::load_reference(model));
  check_cli_compile_refused(model, d.path(), "--quantize int4 --group-size 40", "is not a positive multiple of 32");
}

TEST_CASE("cli: a GPTQ int4 checkpoint compiles as shipped and generates the tokens of its dequantization") {
  TempDir d;
  const std::string model = kiln::test::fixture("gptq_w4g32_asym_f32", "quantized");
  std::string out;
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "gptq.kplan") + " --dtype f32 --max-seq 32",
                              &out) == 0,
      out);
  CHECK(out.find("int4 weights (asymmetric, a scale and a zero point per 32 values): 8 matmul weights (8 as the "
                 "checkpoint ships them, GPTQ)") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "gptq.kplan"), &out) == 0);
  CHECK(out.find("targets    cpu\n") != std::string::npos);
  CHECK(out.find("quantized  i4 asymmetric, a scale and a zero point per 32 values: 8 weights") != std::string::npos);
  check_cli_greedy(d / "gptq.kplan", kiln::test::load_reference(model));
  check_cli_cuda_target(model, d.path(), "--dtype f32 --max-seq 32",
                        "quantized  i4 asymmetric, a scale and a zero point per 32 values: 8 weights",
                        kiln::test::load_reference(model));
}

TEST_CASE("cli: compile --quantize fp8 writes a CPU plan of f8e4m3 weights that generates transformers' tokens") {
  TempDir d;
  const std::string model = kiln::test::fixture("gqa_f32");
  std::string out;
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "f8.kplan") +
                                              " --quantize fp8 --quantize-head --dtype f32 --max-seq 32",
                                          &out) == 0,
                  out);
  CHECK(out.find("fp8 weights (e4m3, a scale per row): 9 matmul weights") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "f8.kplan"), &out) == 0);
  CHECK(out.find("targets    cpu\n") != std::string::npos);
  // 2 layers' qkv (128 x 64), o (64 x 64), gate|up (320 x 64) and down (64 x 160), and the head (256 x 64):
  // 102,400 values, a byte each, and one f32 scale per row (1,408 rows, 256 of them the head's).
  CHECK(out.find("quantized  f8e4m3, a scale per row: 9 weights, 100.00 KiB + 5.50 KiB of f32 scales") !=
        std::string::npos);
  check_cli_greedy(d / "f8.kplan", kiln::test::load_reference(model, "reference_fp8_head.safetensors"));
}

TEST_CASE("cli: a DeepSeek FP8 checkpoint compiles kept as FP8 or upcast, and generates transformers' tokens") {
  TempDir d;
  const std::string model = kiln::test::fixture("ds_v3_fp8_b32", "quantized");
  std::string out;
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "kept.kplan") + " --max-seq 32", &out) == 0,
      out);
  CHECK(
      out.find(
          "72 FP8 e4m3 checkpoint weights (32x32 block scales) kept as f8e4m3 where a matmul or the MoE experts read them") !=
      std::string::npos);
  CHECK(out.find("(34 as the checkpoint ships them, e4m3 with their scales)") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "kept.kplan"), &out) == 0);
  CHECK(out.find("targets    cpu\n") != std::string::npos);
  CHECK(out.find("quantized  f8e4m3, a scale per 32 values: 18 weights") != std::string::npos);
  // The 34 the note counts: the other 16 a scale per row (blocks of 32 rows and k columns), 6 of them
  // the W_UK and W_UV rows of the 3 layers' kv_b, which head_matmul reads (inspect once left them out).
  CHECK(out.find("quantized  f8e4m3, a scale per row: 16 weights, 54.75 KiB + 7.12 KiB of f32 scales") !=
        std::string::npos);
  check_cli_greedy(d / "kept.kplan", kiln::test::load_reference(model));
  // For CUDA too: every FP8 weight kept, the routed experts included (moe_experts version 2).
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "dsc.kplan") + " --max-seq 32 --target cuda",
                              &out) == 0,
      out);
  CHECK(out.find("(34 as the checkpoint ships them, e4m3 with their scales)") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "dsc.kplan"), &out) == 0);
  CHECK(out.find("targets    cuda") != std::string::npos);
  CHECK(out.find("quantized  f8e4m3, a scale per 32 values: 18 weights") != std::string::npos);
  REQUIRE_MESSAGE(kiln::test::run_command(
                      kCli + " compile " + model + " -o " + (d / "ds.kplan") + " --max-seq 32 --dtype f32", &out) == 0,
                  out);
  CHECK(out.find("72 FP8 e4m3 checkpoint weights (32x32 block scales) upcast to f32") != std::string::npos);
  check_cli_greedy(d / "ds.kplan", kiln::test::load_reference(model));
}

TEST_CASE("cli: bad input exits non-zero with one clear line") {
  TempDir d;
  const std::string model = kiln::test::fixture("gqa_f32");
  std::string out;
  REQUIRE(kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "m.kplan") + " --max-seq 16 --chunk 4",
                                  &out) == 0);
  struct Case {
    std::string args;
    std::string expect;
  };
  std::vector<uint8_t> junk(300, 0x41);
  kiln::test::write_bytes(d / "junk.kplan", junk);
  kiln::test::copy_dir(model, d / "mcopy");
  kiln::test::write_bytes(d / "mcopy/model.c", junk);  // (as if a checkpoint held it)
  std::vector<float> f(4, 1.0f);
  write_safetensors(d / "floats.safetensors", {{"input_ids", DType::F32, {1, 4}, f.data(), 16}});
  std::vector<int64_t> big = {1, 2, 300000};
  write_safetensors(d / "big.safetensors", {{"input_ids", DType::I64, {1, 3}, big.data(), 24}});
  std::vector<int64_t> long_ids(40, 1);
  write_safetensors(d / "long.safetensors", {{"input_ids", DType::I64, {1, 40}, long_ids.data(), 320}});
  const Case cases[] = {
      {"compile " + d.path() + "/nothing -o " + (d / "x.kplan"), "config.json"},
      {"inspect " + (d / "junk.kplan"), "bad magic"},
      {"inspect " + (d / "absent.kplan"), "cannot open"},
      {"generate " + (d / "m.kplan") + " --ids 1,2,x", "'x' is not a token id"},
      {"generate " + (d / "m.kplan") + " --ids 1,,2", "empty entry"},
      {"generate " + (d / "m.kplan") + " --ids 1,999 --max-new-tokens 4", "out of range [0, 256)"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --max-new-tokens 20", "exceeds the plan's max_seq of 16"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --max-new-tokens ''", "--max-new-tokens '' is not a number"},
      // sampling values the C API would read as "off", and seeds that would wrap or saturate
      {"generate " + (d / "m.kplan") + " --ids 1,2 --temperature 1 --top-p 0", "--top-p 0 is not in (0, 1]"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --temperature 1 --top-p 5", "--top-p 5 is not in (0, 1]"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --top-k -3", "--top-k -3 is negative (0 is off)"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --eos -7", "--eos -7 is not a token id"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --seed -1", "--seed -1 is not a whole number from 0 to"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --seed 010",
       "--seed 010 has a leading 0, which would read it as octal"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --max-new-tokens 08", "a leading 0 reads a whole number as octal"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --max-new-tokens -08", "a leading 0 reads a whole number as octal"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --in-flight 08", "a leading 0 reads a whole number as octal"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --seed 18446744073709551616",
       "--seed 18446744073709551616 is not a whole number"},
      {"chat " + (d / "m.kplan") + " --top-p 1.5", "--top-p 1.5 is not in (0, 1]"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --eos 999", "eos_id 999 is not a token id of this plan"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --stop ''", "--stop '' is empty"},
      {"detokenize " + (d / "m.kplan") + " --ids 1,5000", "--ids: 5000 at index 1 is out of range [0, 256)"},
      {"eval " + (d / "m.kplan") + " --input " + (d / "big.safetensors") + " --output " + (d / "big.safetensors"),
       "is the input " + (d / "big.safetensors") + ": it would be replaced"},
      {"eval " + (d / "m.kplan") + " --input " + (d / "big.safetensors") + " --output " + (d / "m.kplan"),
       "--output " + (d / "m.kplan") + " is the input " + (d / "m.kplan") + ": it would be replaced"},
      {"compile " + (d / "mcopy") + " -o " + (d / "mcopy/config.json"),
       "-o " + (d / "mcopy/config.json") + " is " + (d / "mcopy/config.json") + ", an input of this command"},
      {"compile " + (d / "mcopy") + " -o " + (d / "mcopy/model.safetensors"),
       (d / "mcopy/model.safetensors") + ", an input of this command"},
      {"generate " + (d / "m.kplan") + " --ids 1,2 --temperature 1 --top-p 1e999", "--top-p 1e999 is not in (0, 1]"},
      {"eval " + (d / "m.kplan") + " --input " + (d / "floats.safetensors") + " --output " + (d / "o.safetensors"),
       "must be I64 or I32"},
      {"eval " + (d / "m.kplan") + " --input " + (d / "big.safetensors") + " --output " + (d / "o.safetensors"),
       "out of range"},
      {"eval " + (d / "m.kplan") + " --input " + (d / "long.safetensors") + " --output " + (d / "o.safetensors"),
       "max_seq of 16"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args);
    const int rc = kiln::test::run_command(kCli + " " + c.args, &out);
    CHECK(rc != 0);
    CHECK(out.find("kiln: error: ") == 0);
    CHECK(out.find(c.expect) != std::string::npos);
    CHECK(count_lines(out) == 1);
  }
  CHECK_FALSE(kiln::test::run_command("test -e " + (d / "o.safetensors"), &out) == 0);
  CHECK(kiln::test::read_bytes(d / "mcopy/model.c") == junk);  // inputs untouched
  // A plan kept in its checkpoint's folder is no input: it is replaced by the next compile.
  for (int i = 0; i < 2; ++i)
    REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + (d / "mcopy") + " -o " + (d / "mcopy/m.kplan") +
                                                " --max-seq 16 --emit-c " + (d / "mcopy/m"),
                                            &out) == 0,
                    out);
  // A replaced plan keeps its permissions (one made private stays private; a read-only one stays so).
  for (const char* mode : {"600", "444"}) {
    CAPTURE(mode);
    REQUIRE(kiln::test::run_command("chmod " + std::string(mode) + " " + (d / "m.kplan"), nullptr) == 0);
    REQUIRE(kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "m.kplan") + " --max-seq 16 --chunk 4",
                                    &out) == 0);
    REQUIRE(kiln::test::run_command("stat -c %a " + (d / "m.kplan"), &out) == 0);
    CHECK(out == std::string(mode) + "\n");
  }
  REQUIRE(kiln::test::run_command("chmod 644 " + (d / "m.kplan"), nullptr) == 0);
  // A name at the file system's 255-byte limit is written through a hidden temporary (its own
  // name has no room for the .tmp suffix).
  const std::string long_name = d / std::string(250, 'p');
  REQUIRE(kiln::test::run_command(kCli + " compile " + model + " -o " + long_name + " --max-seq 16", &out) == 0);
  CHECK(kiln::test::run_command(kCli + " inspect " + long_name, &out) == 0);
  CHECK(kiln::test::run_command("ls -a " + d.path() + " | grep -c '^\\.kiln\\.tmp'", &out) != 0);  // none left
  CHECK(kiln::test::read_bytes(d / "mcopy/config.json") == kiln::test::read_bytes(model + "/config.json"));
  // --stop takes one value: the plan after it is still the plan (which has no tokenizer to see
  // the text in).
  CHECK(kiln::test::run_command(kCli + " generate --stop . " + (d / "m.kplan") + " --ids 1,2 --max-new-tokens 2",
                                &out) == 1);
  CHECK(out.find("kiln: error: this plan has no tokenizer") != std::string::npos);
  // A seed in hex, as CLI11 reads it, is the same seed.
  std::string hex, dec;
  const std::string sample = kCli + " generate " + (d / "m.kplan") + " --ids 1,2 --max-new-tokens 6 --temperature 1 ";
  REQUIRE(kiln::test::run_command(sample + "--seed 0x2a --output-ids", &hex) == 0);
  REQUIRE(kiln::test::run_command(sample + "--seed 42 --output-ids", &dec) == 0);
  CHECK(last_line(hex) == last_line(dec));  // (the ids; the line before is the timing)
  CHECK(count_words(last_line(hex)) == 8);
  // Usage errors found by the argument parser: the same one-line format, exit status 2.
  const std::pair<std::string, const char*> usage[] = {
      {"compile", "model_dir is required"},
      {"generate " + (d / "m.kplan") + " --max-new-tokens many", "many"},
      {"inspect " + (d / "m.kplan") + " --no-such-flag", "--no-such-flag"},
      {"frobnicate", "unknown command 'frobnicate' (commands: compile, inspect, eval, generate"},
      {"", "A subcommand is required"},
  };
  for (const auto& u : usage) {
    const std::string& args = u.first;
    const char* expect = u.second;
    CAPTURE(args);
    CHECK(kiln::test::run_command(kCli + " " + args, &out) == 2);
    CHECK(out.find("kiln: error: ") == 0);
    CHECK(out.find(expect) != std::string::npos);
    CHECK(count_lines(out) == 1);
  }
  CHECK(kiln::test::run_command(kCli + " compile --help", &out) == 0);
}

namespace {
// s as one shell word.
std::string shell_quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> w;
  std::istringstream in(line);
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}
}  // namespace

// Stop tokens and stop strings end generate from --ids as from text, and a stop string may begin in
// the prompt (transformers' stop_strings match the end of the whole sequence). The demo model's
// greedy continuation of "In the beginning" is transformers' (models/kjv-tiny/reference.json):
// 268 258 611 669 835 11 ..., where 11 is "," and 268 " of".
TEST_CASE("cli: generate stops at stop tokens and strings from --ids as from text") {
  TempDir d;
  const std::string model = d / "kjv";
  kiln::test::copy_dir(kiln::test::fixtures_root() + "/../../models/kjv-tiny", model);
  std::ofstream(model + "/generation_config.json") << R"({"eos_token_id": [999, 11]})";
  std::string out;
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + model + " -o " + (d / "k.kplan") + " --max-seq 64", &out) == 0, out);
  const std::string gen = kCli + " generate " + (d / "k.kplan") + " --max-new-tokens 12 --output-ids ";
  const std::string ids = "--ids 2046,1147,258,1801,1243 ", prompt = "2046 1147 258 1801 1243 ";
  REQUIRE(kiln::test::run_command(gen + ids, &out) == 0);
  CHECK(last_line(out) == prompt + "268 258 611 669 835 11");  // (the generation config's eos 11)
  REQUIRE(kiln::test::run_command(gen + ids + "--ignore-eos", &out) == 0);
  CHECK(count_words(last_line(out)) == 5 + 12);
  REQUIRE(kiln::test::run_command(gen + ids + "--ignore-eos --stop ' of'", &out) == 0);
  CHECK(last_line(out) == prompt + "268");
  REQUIRE(kiln::test::run_command(gen + ids + "--ignore-eos --stop 'beginning of'", &out) == 0);
  CHECK(last_line(out) == prompt + "268");
  REQUIRE(kiln::test::run_command(gen + "-p 'In the beginning' --stop 'beginning of'", &out) == 0);
  CHECK(last_line(out) == prompt + "268");
  REQUIRE(kiln::test::run_command(gen + "-p 'In the beginning' --stop 'the beginning'", &out) == 0);
  CHECK(count_words(last_line(out)) > 5 + 1);  // (wholly in the prompt: no stop)
  // A SentencePiece reply decoded alone loses its first space ("x" then "▁arri" shows "arri"); a
  // stop string is found in the whole sequence's text, as transformers' stop_strings find it.
  {
    const std::string sp = d / "sp";
    kiln::test::TinyLlama tl;
    tl.vocab = 1000;
    REQUIRE(kiln::test::run_command("mkdir -p " + sp, nullptr) == 0);
    kiln::test::write_tiny_llama(sp, tl);
    const std::string tok = kiln::test::fixtures_root() + "/tokenizers/sentencepiece";
    REQUIRE(kiln::test::run_command("cp " + tok + "/tokenizer.json " + tok + "/tokenizer_config.json " + sp, nullptr) ==
            0);
    REQUIRE(kiln::test::run_command(kCli + " compile " + sp + " -o " + (d / "sp.kplan") + " --max-seq 32", &out) == 0);
    // A prompt whose first generated token begins with "▁" (a space in the whole text).
    std::string spgen, whole, want, prompt_text;
    for (const char* p : {"x", "a", "the", "in", "of", "and", "to", "is", "it", "he", "we", "be"}) {
      const std::string g =
          kCli + " generate " + (d / "sp.kplan") + " -p " + p + " --max-new-tokens 4 --ignore-eos --output-ids ";
      REQUIRE(kiln::test::run_command(g, &out) == 0);
      const std::vector<std::string> ids = split_words(last_line(out));
      REQUIRE(ids.size() >= 5);
      const size_t n_prompt = ids.size() - 4;
      std::string upto;  // the prompt's ids and the first generated one
      for (size_t i = 0; i <= n_prompt; ++i) upto += (i ? "," : "") + ids[i];
      REQUIRE(kiln::test::run_command(kCli + " detokenize " + (d / "sp.kplan") + " --skip-special --json --ids " + upto,
                                      &out) == 0);
      const std::string text = nlohmann::json::parse(last_line(out)).get<std::string>();
      const std::string lead = std::string(p) + " ";
      if (text.size() > lead.size() && text.compare(0, lead.size(), lead) == 0) {
        spgen = g, whole = text, prompt_text = p;
        for (size_t i = 0; i <= n_prompt; ++i) want += (i ? " " : "") + ids[i];
        break;
      }
    }
    REQUIRE_MESSAGE(!spgen.empty(), "no prompt's first token began with a space");
    // Across the boundary, and the first token's own text with its space.
    for (const std::string& stop : {whole.substr(prompt_text.size() - 1), whole.substr(prompt_text.size())}) {
      CAPTURE(stop);
      REQUIRE(kiln::test::run_command(spgen + "--stop " + shell_quoted(stop), &out) == 0);
      CHECK(last_line(out) == want);
    }
  }
  // Without a tokenizer there is no text to find a stop string in.
  REQUIRE(kiln::test::run_command(
              kCli + " compile " + model + " -o " + (d / "n.kplan") + " --max-seq 64 --no-tokenizer", &out) == 0);
  CHECK(out.find("eos_token_id [999,11] is not kept: a plan without a tokenizer has no stop tokens") !=
        std::string::npos);
  CHECK(kiln::test::run_command(kCli + " generate " + (d / "n.kplan") + " --ids 1,2 --stop x", &out) != 0);
  CHECK(out.find("this plan has no tokenizer") != std::string::npos);
}

TEST_CASE("cli: -o and --output write regular files only, through symbolic links, never over a device or FIFO") {
  TempDir d;
  const std::string model = kiln::test::fixture("gqa_f32");
  const std::string compile = kCli + " compile " + model + " --max-seq 16 --chunk 4 -o ";
  std::string out;
  REQUIRE(kiln::test::run_command("mkfifo " + (d / "fifo") + " && ln -s /dev/null " + (d / "null") + " && ln -s " +
                                      (d / "fifo") + " " + (d / "to_fifo") + " && ln -s real.kplan " +
                                      (d / "link.kplan") + " && ln -s a " + (d / "b") + " && ln -s b " + (d / "a") +
                                      " && mkdir " + (d / "dir"),
                                  &out) == 0);
  const std::pair<std::string, std::string> refused[] = {
      {"fifo", "'" + (d / "fifo") + "' is a FIFO or pipe: kiln writes its output to a regular file (replacing it)"},
      {"null", "'" + (d / "null") + "' links to '/dev/null', which is a device"},
      {"to_fifo", "links to '" + (d / "fifo") + "', which is a FIFO or pipe"},
      {"dir", "'" + (d / "dir") + "' is a folder"},
      {"a", "too many levels of symbolic links"},
  };
  for (const auto& entry : refused) {  // (not a structured binding: CAPTURE cannot capture one)
    const std::string& name = entry.first;
    const std::string& expect = entry.second;
    CAPTURE(name);
    CHECK(kiln::test::run_command(compile + (d / name), &out) == 1);
    CHECK(out.find(expect) != std::string::npos);
    CHECK(count_lines(out) == 1);
  }
  // A FIFO where the old writer put its temporary file: never opened (it would block); /dev/stdout, a
  // pipe here, is refused as one.
  REQUIRE(kiln::test::run_command("mkfifo " + (d / "q.kplan.tmp"), &out) == 0);
  CHECK(kiln::test::run_command("timeout 60 " + compile + (d / "q.kplan"), &out) == 0);
  CHECK(kiln::test::temp_files_beside(d / "q.kplan") == std::vector<std::string>{"q.kplan.tmp"});
  CHECK(kiln::test::run_command("bash -c 'set -o pipefail; " + compile + "/dev/stdout | cat'", &out) == 1);
  CHECK(out.find("'/dev/stdout' is a FIFO or pipe") != std::string::npos);
  // Each is still what it was: the FIFO a FIFO, the links links, /dev/null a device.
  CHECK(kiln::test::run_command("test -p " + (d / "fifo") + " && test -L " + (d / "null") + " && test -c /dev/null",
                                &out) == 0);
  // Through a link to a file not there yet: the file is made, the link stays.
  REQUIRE(kiln::test::run_command(compile + (d / "link.kplan"), &out) == 0);
  CHECK(kiln::test::run_command("test -L " + (d / "link.kplan") + " && test -f " + (d / "real.kplan"), &out) == 0);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "link.kplan"), &out) == 0);
  // --emit-c into a folder that is not there, or over a FIFO: refused before anything is written.
  CHECK(kiln::test::run_command(compile + (d / "e.kplan") + " --emit-c " + (d / "nope/p"), &out) == 1);
  CHECK(out.find("--emit-c: " + (d / "nope/p.h") + ": cannot open for writing") != std::string::npos);
  CHECK(kiln::test::run_command(compile + (d / "pc.c") + " --emit-c " + (d / "pc"), &out) == 1);
  CHECK(out.find("would write " + (d / "pc.c") + ", which is the plan (-o)") != std::string::npos);
  REQUIRE(kiln::test::run_command("mkfifo " + (d / "q.h"), &out) == 0);
  CHECK(kiln::test::run_command(compile + (d / "e.kplan") + " --emit-c " + (d / "q"), &out) == 1);
  CHECK(out.find("--emit-c: '" + (d / "q.h") + "' is a FIFO or pipe") != std::string::npos);
  CHECK_FALSE(kiln::path_exists(d / "e.kplan"));
  CHECK(kiln::test::temp_files_beside(d / "q.c").empty());
  // eval's --output: the same rules.
  std::vector<int64_t> ids = {1, 2, 3};
  write_safetensors(d / "ids.safetensors", {{"input_ids", DType::I64, {1, 3}, ids.data(), 24}});
  CHECK(kiln::test::run_command(
            kCli + " eval " + (d / "real.kplan") + " --input " + (d / "ids.safetensors") + " --output " + (d / "null"),
            &out) != 0);
  CHECK(out.find("links to '/dev/null', which is a device") != std::string::npos);
  CHECK(kiln::test::run_command("test -L " + (d / "null"), &out) == 0);
}

TEST_CASE("cli: an f16 plan whose activations overflow is an error in generate and a warning in eval") {
  // Weights of standard deviation 300: the f32 plan runs; the f16 one leaves f16's range (±65504)
  // and its logits are NaN, which argmax would turn into token 0 without a word.
  TempDir d;
  kiln::test::TinyLlama tl = kiln::test::f16_overflowing_llama();
  kiln::test::write_tiny_llama(d.path(), tl);
  std::string out;
  for (const char* dt : {"f16", "f32"})
    REQUIRE_MESSAGE(
        kiln::test::run_command(
            kCli + " compile " + d.path() + " -o " + (d / dt) + ".kplan --dtype " + dt + " --max-seq 32", &out) == 0,
        out);
  const std::string gen = " --ids '1 2 3' --max-new-tokens 5 --ignore-eos";
  CHECK(kiln::test::run_command(kCli + " generate " + (d / "f16.kplan") + gen, &out) == 1);
  CHECK_MESSAGE(out.find("kiln: error: generate's last logits (token 5) hold NaN: the tokens are not the model's") !=
                    std::string::npos,
                out);
  CHECK(out.find("compile with --dtype bf16 or f32") != std::string::npos);
  CHECK(out.find("0 0 0 0 0\n") != std::string::npos);  // what streamed is ended by a newline
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " generate " + (d / "f32.kplan") + gen, &out) == 0, out);
  CHECK(out.find("NaN") == std::string::npos);
  std::vector<int64_t> ids = {1, 2, 3};
  write_safetensors(d / "ids.safetensors", {{"input_ids", DType::I64, {1, 3}, ids.data(), 24}});
  for (const char* dt : {"f16", "f32"}) {
    REQUIRE(kiln::test::run_command(kCli + " eval " + (d / dt) + ".kplan --input " + (d / "ids.safetensors") +
                                        " --output " + (d / dt) + ".logits.safetensors",
                                    &out) == 0);
    CHECK((out.find("kiln: warning: ") != std::string::npos) == (std::string(dt) == "f16"));
  }
  CHECK(out.find("wrote logits [1, 3, 64]") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " eval " + (d / "f16.kplan") + " --input " + (d / "ids.safetensors") +
                                      " --output " + (d / "f16.logits.safetensors"),
                                  &out) == 0);
  CHECK(out.find("192 of the logits are NaN or infinite") != std::string::npos);
  // chat ends its reply's line, then fails the same way.
  TempDir e;
  tl.vocab = 1211;
  kiln::test::write_tiny_llama(e.path(), tl);
  const std::string tok = kiln::test::fixtures_root() + "/tokenizers/bytelevel";
  REQUIRE(kiln::test::run_command("cp " + tok + "/tokenizer.json " + tok + "/tokenizer_config.json " + e.path(),
                                  nullptr) == 0);
  REQUIRE(kiln::test::run_command(
              kCli + " compile " + e.path() + " -o " + (e / "m.kplan") + " --dtype f16 --max-seq 64", &out) == 0);
  CHECK(kiln::test::run_command(
            "printf 'hi\\n' | " + kCli + " chat " + (e / "m.kplan") + " --max-new-tokens 4 --temperature 0", &out) ==
        1);
  CHECK_MESSAGE(out.find("\nkiln: error: generate's last logits (token 4) hold NaN") != std::string::npos, out);
}

TEST_CASE("cli: text in and text out with an embedded tokenizer (generate -p, chat, --no-tokenizer)") {
  TempDir d;
  // A tiny random LLaMA whose vocabulary matches the byte-level fixture tokenizer (1211 ids).
  kiln::test::TinyLlama tl;
  tl.vocab = 1211;
  tl.hidden = 16;
  tl.ffn = 24;
  kiln::test::write_tiny_llama(d.path(), tl);
  const std::string tok = kiln::test::fixtures_root() + "/tokenizers/bytelevel";
  REQUIRE(kiln::test::run_command("cp " + tok + "/tokenizer.json " + tok + "/tokenizer_config.json " + d.path(),
                                  nullptr) == 0);
  std::string out;
  REQUIRE_MESSAGE(
      kiln::test::run_command(kCli + " compile " + d.path() + " -o " + (d / "m.kplan") + " --max-seq 64", &out) == 0,
      out);
  CHECK(out.find("tokenizer: byte-level BPE, 1211 tokens") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "m.kplan"), &out) == 0);
  CHECK(out.find("chat Jinja template") != std::string::npos);
  // -p: the prompt is tokenized with BOS; --output-ids shows the ids the tokenizer made.
  REQUIRE(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") +
                                      " -p 'Hello kiln' --max-new-tokens 5 --ignore-eos --output-ids 2>/dev/null",
                                  &out) == 0);
  CHECK(last_line(out).rfind("1204 ", 0) == 0);  // <|begin_of_text|> first
  // An empty prompt is a prompt: HF encodes "" as the BOS token alone, and generation follows it.
  REQUIRE(kiln::test::run_command(
              kCli + " generate " + (d / "m.kplan") + " -p '' --max-new-tokens 3 --ignore-eos --output-ids 2>/dev/null",
              &out) == 0);
  CHECK(count_words(last_line(out)) == 4);
  CHECK(last_line(out).rfind("1204 ", 0) == 0);
  CHECK(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") + " --ids ''", &out) != 0);
  CHECK(out.find("--ids is empty") != std::string::npos);
  // Text mode streams decoded text and exits cleanly.
  REQUIRE(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") +
                                      " -p 'Hello' --max-new-tokens 8 --ignore-eos --seed 3 --temperature 1",
                                  &out) == 0);
  CHECK(out.find("generated 8 tokens") != std::string::npos);
  // chat reads turns from stdin and answers each one.
  REQUIRE(kiln::test::run_command("printf 'hi there\\nand again\\n' | " + kCli + " chat " + (d / "m.kplan") +
                                      " --max-new-tokens 4 --temperature 0",
                                  &out) == 0);
  CHECK(count_lines(out) >= 2);
  // A turn that alone leaves no room for a reply (the plan's max_seq is 64) is refused, not silently
  // dropped; the next turn is answered; the exit status says one was not.
  std::string long_turn;
  for (int i = 0; i < 80; ++i) long_turn += "word ";
  CHECK(kiln::test::run_command("printf '" + long_turn + "\\nhi\\n' | " + kCli + " chat " + (d / "m.kplan") +
                                    " --max-new-tokens 4 --temperature 0",
                                &out) == 1);
  CHECK(out.find("kiln: error: this turn is ") != std::string::npos);
  CHECK(out.find("leaves no room for a reply in the plan's max_seq of 64 (not answered") != std::string::npos);
  CHECK(out.find("starting over") == std::string::npos);  // (nothing before it to drop)
  // After a first turn: the long one is refused and the conversation so far is kept, not dropped.
  CHECK(kiln::test::run_command("printf 'hi\\n" + long_turn + "\\nhi\\n' | " + kCli + " chat " + (d / "m.kplan") +
                                    " --max-new-tokens 4 --temperature 0",
                                &out) == 1);
  CHECK(out.find("(not answered; the conversation so far is kept") != std::string::npos);
  CHECK(out.find("starting over") == std::string::npos);
  // A chat line ending in CRLF is the same turn; one holding a NUL byte (a chat message cannot) is
  // refused, not cut short; a negative or huge --max-new-tokens is an error before any allocation.
  std::string lf, crlf;
  REQUIRE(kiln::test::run_command("printf 'hi there\\n' | " + kCli + " chat " + (d / "m.kplan") +
                                      " --max-new-tokens 4 --temperature 0 2>/dev/null",
                                  &lf) == 0);
  REQUIRE(kiln::test::run_command("printf 'hi there\\r\\n' | " + kCli + " chat " + (d / "m.kplan") +
                                      " --max-new-tokens 4 --temperature 0 2>/dev/null",
                                  &crlf) == 0);
  CHECK(lf == crlf);
  CHECK(kiln::test::run_command("printf 'hi\\000 there\\nhi\\n' | " + kCli + " chat " + (d / "m.kplan") +
                                    " --max-new-tokens 4 --temperature 0",
                                &out) == 1);
  CHECK(out.find("kiln: error: this turn holds a NUL byte") != std::string::npos);
  CHECK(kiln::test::run_command("printf 'hi\\n' | " + kCli + " chat " + (d / "m.kplan") + " --max-new-tokens -1",
                                &out) == 1);
  CHECK(out.find("--max-new-tokens must not be negative") != std::string::npos);
  CHECK(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") + " --ids 1 --max-new-tokens 1000000000000",
                                &out) == 1);
  CHECK(out.find("exceeds the plan's max_seq of 64") != std::string::npos);
  // Output that could not be written is an error, not a success with the text cut short.
  CHECK(kiln::test::run_command(
            "(" + kCli + " generate " + (d / "m.kplan") + " -p Hello --max-new-tokens 3 --ignore-eos > /dev/full)",
            &out) == 1);
  CHECK(out.find("kiln: error: writing to standard output failed") != std::string::npos);
  CHECK(kiln::test::run_command("(" + kCli + " inspect " + (d / "m.kplan") + " > /dev/full)", &out) == 1);
  CHECK(out.find("kiln: error: writing to standard output failed: No space left on device") != std::string::npos);
  // A plan truncated in place while chat has it open: a clear error (the mapping faults), not a
  // bare "Bus error". The second turn waits until the first reply was written.
  REQUIRE(kiln::test::run_command("cp " + (d / "m.kplan") + " " + (d / "live.kplan"), nullptr) == 0);
  const std::string live = d / "live.kplan", reply = d / "reply1";
  CHECK(kiln::test::run_command("((printf 'hi\\n'; while [ ! -s " + reply +
                                    " ]; do sleep 0.02; done; truncate -s 4096 " + live + "; printf 'hi\\n') | " +
                                    kCli + " chat " + live + " --raw --max-new-tokens 3 --temperature 0 > " + reply +
                                    ")",
                                &out) != 0);
  CHECK(out.find("kiln: error: a file kiln had mapped (a checkpoint shard or the plan) was truncated") !=
        std::string::npos);
  // Errors: both --ids and -p; chat with an unknown template; a plan without a tokenizer.
  CHECK(kiln::test::run_command(kCli + " generate " + (d / "m.kplan") + " -p x --ids 1", &out) != 0);
  CHECK(out.find("exactly one of --ids and -p") != std::string::npos);
  REQUIRE(kiln::test::run_command(
              kCli + " compile " + d.path() + " -o " + (d / "ids.kplan") + " --max-seq 64 --no-tokenizer", &out) == 0);
  CHECK(kiln::test::run_command(kCli + " generate " + (d / "ids.kplan") + " -p hello", &out) != 0);
  CHECK(out.find("has no tokenizer") != std::string::npos);
  const std::string sp = kiln::test::fixtures_root() + "/tokenizers/sentencepiece";
  TempDir e;
  tl.vocab = 1000;
  kiln::test::write_tiny_llama(e.path(), tl);
  REQUIRE(kiln::test::run_command("cp " + sp + "/tokenizer.json " + sp + "/tokenizer_config.json " + e.path(),
                                  nullptr) == 0);
  REQUIRE(kiln::test::run_command(
              kCli + " compile " + e.path() + " -o " + (e / "m.kplan") + " --max-seq 64 --no-chat-template", &out) ==
          0);
  CHECK(out.find("no chat template") != std::string::npos);
  CHECK(kiln::test::run_command("printf 'hi\\n' | " + kCli + " chat " + (e / "m.kplan"), &out) != 0);
  CHECK(out.find("has no chat template") != std::string::npos);
  CHECK(out.find("--raw") != std::string::npos);
  REQUIRE(kiln::test::run_command("printf 'hi\\n' | " + kCli + " chat " + (e / "m.kplan") + " --raw --max-new-tokens 3",
                                  &out) == 0);
}

TEST_CASE("cli: inspect --json agrees with the plan, and --emit-c embeds a plan a C program runs") {
  TempDir d;
  std::string out;
  REQUIRE(kiln::test::run_command(kCli + " compile " + kiln::test::fixture("bias_f32") + " -o " + (d / "m.kplan") +
                                      " --max-seq 24 --batch 2 --chunk 4",
                                  &out) == 0);
  REQUIRE(kiln::test::run_command(kCli + " inspect " + (d / "m.kplan") + " --json 2>/dev/null", &out) == 0);
  const auto j = nlohmann::json::parse(out);
  auto plan = Plan::load_file(d / "m.kplan");
  REQUIRE(plan.is_ok());
  const Plan& p = *plan.value();
  CHECK(j["model"]["max_seq"] == 24);
  CHECK(j["model"]["batch"] == 2);
  CHECK(j["memory"]["kv_cache"] == p.memory().kv_bytes);
  CHECK(j["memory"]["arena"] == p.memory().arena_bytes);
  CHECK(j["tensors"].size() == p.tensors().size());
  CHECK(j["programs"].size() == p.programs().size());
  CHECK(j["programs"][0]["launches"] == p.programs()[0].launches.size());
  CHECK(j["plan"]["file_bytes"] == p.file_size());
  CHECK(j["targets"][0]["backend"] == "cpu");
  CHECK(j["tokenizer"].is_null());
  // The embedded example (built by CMake from kiln compile --emit-c on gqa_f32) generates
  // transformers' greedy continuation.
  const auto ref = kiln::test::load_reference(kiln::test::fixture("gqa_f32"));
  std::string ids;
  for (int32_t t : ref.prompt_ids) ids += " " + std::to_string(t);
  REQUIRE(kiln::test::run_command(std::string(KILN_EMBEDDED_EXAMPLE) + ids, &out) == 0);
  std::string expect;
  for (size_t i = ref.prompt_ids.size(); i < ref.greedy_ids.size(); ++i)
    expect += (expect.empty() ? "" : " ") + std::to_string(ref.greedy_ids[i]);
  CHECK(last_line(out) == expect);
}

// kiln tokenize / detokenize on a plan that embeds a real tokenizer (Mistral v3's, from the
// mistral-common package): the ids of every fixture case, from one file in one process, are HF's.
TEST_CASE("cli: tokenize and detokenize give HF's ids and text through a compiled plan") {
  TempDir d;
  kiln::test::write_tiny_llama_with_tokenizer(d.path(), "real_tokenizers/mistral_v3", 32768);
  const std::string plan = d / "m.kplan";
  std::string out;
  REQUIRE_MESSAGE(kiln::test::run_command(kCli + " compile " + d.path() + " -o " + plan + " --max-seq 16", &out) == 0,
                  out);
  std::ifstream in(kiln::test::fixtures_root() + "/real_tokenizers/mistral_v3/cases.json");
  REQUIRE(in.good());
  const nlohmann::json cases = nlohmann::json::parse(in);
  nlohmann::json texts = nlohmann::json::array();
  for (const auto& c : cases) texts.push_back(c["text"]);
  std::ofstream(d / "texts.json") << texts.dump();
  REQUIRE(kiln::test::run_command(kCli + " tokenize " + plan + " --file " + (d / "texts.json") + " --json 2>&1",
                                  &out) == 0);
  const nlohmann::json got = nlohmann::json::parse(out);
  REQUIRE(got.size() == cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i]["text"].get<std::string>());
    CHECK(got[i] == cases[i]["ids_special"]);
  }
  // Qwen2's real tokenizer (NFC, single-digit split, 151,643 tokens plus added ones) and Mistral
  // NeMo's tekken (its Split regex on PCRE2, 131,072 tokens) likewise.
  for (const auto& fam_vocab : {std::pair<const char*, int64_t>{"qwen2", 151936}, {"tekken", 131072}}) {
    const std::string family = fam_vocab.first;
    CAPTURE(family);
    TempDir q;
    kiln::test::write_tiny_llama_with_tokenizer(q.path(), "real_tokenizers/" + family, fam_vocab.second);
    std::string qout;
    REQUIRE_MESSAGE(
        kiln::test::run_command(kCli + " compile " + q.path() + " -o " + (q / "q.kplan") + " --max-seq 16", &qout) == 0,
        qout);
    std::ifstream qin(kiln::test::fixtures_root() + "/real_tokenizers/" + family + "/cases.json");
    const nlohmann::json qcases = nlohmann::json::parse(qin);
    nlohmann::json qtexts = nlohmann::json::array();
    for (const auto& c : qcases) qtexts.push_back(c["text"]);
    std::ofstream(q / "texts.json") << qtexts.dump();
    REQUIRE(kiln::test::run_command(kCli + " tokenize " + (q / "q.kplan") + " --file " + (q / "texts.json") + " --json",
                                    &qout) == 0);
    const nlohmann::json qgot = nlohmann::json::parse(qout);
    REQUIRE(qgot.size() == qcases.size());
    for (size_t i = 0; i < qcases.size(); ++i) CHECK(qgot[i] == qcases[i]["ids_special"]);
  }
  // One prompt; one per line; without BOS.
  REQUIRE(kiln::test::run_command(kCli + " tokenize " + plan + " -p ' Hello'", &out) == 0);
  CHECK(out == "1 23325\n");                                         // HF: [1, 23325] (▁Hello), not ▁ then ▁Hello
  std::ofstream(d / "lines.txt") << " Hello\r\nHello\n[INST] Hi\n";  // not .json: lines, even from "["
  REQUIRE(kiln::test::run_command(kCli + " tokenize " + plan + " --file " + (d / "lines.txt") + " --no-special",
                                  &out) == 0);
  CHECK(out.rfind("23325\n23325\n3 ", 0) == 0);  // [INST] is one special token
  CHECK(count_lines(out) == 3);
  // tokenize's output goes back into detokenize as it is printed.
  std::string spaced;
  REQUIRE(kiln::test::run_command(kCli + " detokenize " + plan + " --ids '1 23325'", &spaced) == 0);
  REQUIRE(kiln::test::run_command(kCli + " detokenize " + plan + " --ids 1,23325", &out) == 0);
  CHECK(spaced == out);
  CHECK(out.find("Hello\n") != std::string::npos);
  for (const char* bad : {"'1, ,2'", "1,2,", "' 1, 2 , '"}) {
    CAPTURE(std::string(bad));
    CHECK(kiln::test::run_command(kCli + " detokenize " + plan + " --ids " + bad, &out) != 0);
    CHECK(out.find("empty entry") != std::string::npos);
  }
  // detokenize: the text HF decodes, as a JSON string so newlines survive.
  for (size_t i = 0; i < cases.size(); i += 37) {
    std::string ids;
    for (const auto& id : cases[i]["ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id.get<int>());
    if (ids.empty()) continue;
    CAPTURE(cases[i]["text"].get<std::string>());
    REQUIRE(kiln::test::run_command(kCli + " detokenize " + plan + " --json --ids " + ids, &out) == 0);
    CHECK(nlohmann::json::parse(out) == cases[i]["decoded"]);
  }
  // Bad input: one line each, non-zero.
  CHECK(kiln::test::run_command(kCli + " tokenize " + plan + " -p x --file " + (d / "lines.txt"), &out) != 0);
  CHECK(out.find("exactly one of -p/--prompt and --file") != std::string::npos);
  CHECK(kiln::test::run_command(kCli + " tokenize " + plan, &out) != 0);
  CHECK(kiln::test::run_command(kCli + " tokenize " + plan + " --file " + (d / "absent.txt"), &out) != 0);
  CHECK(out.find("absent.txt") != std::string::npos);
  CHECK(kiln::test::run_command(kCli + " tokenize " + plan + " --file " + d.path(), &out) != 0);  // a folder
  std::ofstream(d / "bad.json") << "[\"a\", 3]";
  CHECK(kiln::test::run_command(kCli + " tokenize " + plan + " --file " + (d / "bad.json"), &out) != 0);
  CHECK(out.find("element 1 is not a string") != std::string::npos);
  CHECK(kiln::test::run_command(kCli + " detokenize " + plan + " --ids 1,x", &out) != 0);
  CHECK(out.find("not a token id") != std::string::npos);
  REQUIRE(kiln::test::run_command(
              kCli + " compile " + d.path() + " -o " + (d / "ids.kplan") + " --max-seq 16 --no-tokenizer", &out) == 0);
  CHECK(kiln::test::run_command(kCli + " tokenize " + (d / "ids.kplan") + " -p hi", &out) != 0);
  CHECK(out.find("kiln: error:") != std::string::npos);
}

// Real tokenizer folders with a real template of their family as chat_template.jinja (the layout
// transformers saves): chat-template's text and ids are apply_chat_template's
// (tests/fixtures/chat_templates/e2e.json), chat answers through it, and bad input fails cleanly.
TEST_CASE("cli: chat-template renders and tokenizes conversations as apply_chat_template does") {
  const std::string root = kiln::test::fixtures_root() + "/chat_templates";
  std::ifstream in(root + "/e2e.json");
  REQUIRE(in.good());
  const auto doc = nlohmann::ordered_json::parse(in);
  const std::map<std::string, int64_t> vocab = {{"smollm2", 49152}, {"qwen2", 151936}, {"mistral_v3", 32768}};
  std::map<std::string, std::unique_ptr<TempDir>> dirs;
  int checked = 0;
  std::string out;
  for (const auto& c : doc["cases"]) {
    const std::string family = c["tokenizer"].get<std::string>();
    CAPTURE(family);
    CAPTURE(c["conversation"].get<std::string>());
    if (!dirs.count(family)) {
      auto d = std::make_unique<TempDir>();
      kiln::test::write_tiny_llama_with_tokenizer(d->path(), "real_tokenizers/" + family, vocab.at(family));
      kiln::test::write_bytes(
          d->path() + "/chat_template.jinja",
          kiln::test::read_bytes(root + "/templates/" + c["template"].get<std::string>() + ".jinja"));
      REQUIRE_MESSAGE(kiln::test::run_command(
                          kCli + " compile " + d->path() + " -o " + (*d / "m.kplan") + " --max-seq 16", &out) == 0,
                      out);
      CHECK(out.find("chat template (") != std::string::npos);
      dirs[family] = std::move(d);
    }
    const TempDir& d = *dirs[family];
    nlohmann::ordered_json conv = {{"messages", doc["conversations"][c["conversation"].get<std::string>()]}};
    for (const auto& [k, v] : c["variables"].items()) conv[k] = v;
    std::ofstream(d / "conv.json") << conv.dump();
    const std::string agp = c["add_generation_prompt"].get<bool>() ? " --add-generation-prompt" : "";
    const std::string cmd = kCli + " chat-template " + (d / "m.kplan") + " --messages " + (d / "conv.json") + agp;
    REQUIRE(kiln::test::run_command(cmd + " 2>/dev/null", &out) == 0);
    CHECK(out == c["text"].get<std::string>());
    REQUIRE(kiln::test::run_command(cmd + " --json 2>/dev/null", &out) == 0);
    CHECK(nlohmann::json::parse(out) == c["text"]);
    REQUIRE(kiln::test::run_command(cmd + " --ids --json 2>/dev/null", &out) == 0);
    CHECK(nlohmann::json::parse(out) == c["ids"]);
    ++checked;
  }
  CHECK(checked == int(doc["cases"].size()));
  CHECK(checked >= 18);
  // A bare array of messages is a conversation too; chat answers through the template.
  const TempDir& s = *dirs.at("smollm2");
  std::ofstream(s / "arr.json") << R"([{"role": "user", "content": "Hello!"}])";
  REQUIRE(kiln::test::run_command(kCli + " chat-template " + (s / "m.kplan") + " --messages " + (s / "arr.json"),
                                  &out) == 0);
  CHECK(out.rfind("<|im_start|>system\n", 0) == 0);
  // (SmolLM2's template adds its system prompt: more than these plans' max_seq of 16, so a plan of 128)
  REQUIRE(kiln::test::run_command(kCli + " compile " + s.path() + " -o " + (s / "m128.kplan") + " --max-seq 128",
                                  &out) == 0);
  REQUIRE(kiln::test::run_command(
              "printf 'hi\\n' | " + kCli + " chat " + (s / "m128.kplan") + " --max-new-tokens 3 --temperature 0 2>&1",
              &out) == 0);
  CHECK(out.find("error") == std::string::npos);
  // Bad input: one clear line, non-zero.
  const std::string plan = s / "m.kplan";
  struct Bad {
    const char* file;
    const char* text;
    const char* message;
  };
  for (const Bad& b :
       {Bad{"notjson.json", "[{\"role\": ", "the conversation: JSON at byte"},
        Bad{"scalar.json", "42", "the messages must be a list"},
        Bad{"nomsgs.json", "{\"tools\": []}", "has no \"messages\""},
        Bad{"notdict.json", "[\"hi\"]", "each message must be an object"},
        Bad{"empty.json", "[]", "empty conversation"},  // as apply_chat_template refuses it
        Bad{"emptyobj.json", "{\"messages\": [], \"tools\": []}", "empty conversation"},
        Bad{"deep.json", nullptr, "nested too deeply"},
        Bad{"agp.json", "{\"messages\": [], \"add_generation_prompt\": true}", "pass it as the argument"},
        Bad{"cfm.json", "{\"messages\": [], \"continue_final_message\": true}", "kiln has no such option"}}) {
    CAPTURE(std::string(b.file));
    std::string text = b.text ? b.text : std::string(5000, '[') + std::string(5000, ']');
    std::ofstream(s / b.file) << text;
    CHECK(kiln::test::run_command(kCli + " chat-template " + plan + " --messages " + (s / b.file), &out) != 0);
    CHECK(out.find(b.message) != std::string::npos);
    CHECK(count_lines(out) == 1);
  }
  CHECK(kiln::test::run_command(kCli + " chat-template " + plan + " --messages " + (s / "absent.json"), &out) != 0);
  CHECK(out.find("absent.json") != std::string::npos);
  // A template that raises (LLaMA-2's, on roles that do not alternate) names its message.
  const TempDir& m = *dirs.at("mistral_v3");
  std::ofstream(m / "twice.json") << R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])";
  CHECK(kiln::test::run_command(kCli + " chat-template " + (m / "m.kplan") + " --messages " + (m / "twice.json"),
                                &out) != 0);
  CHECK(out.find("must alternate") != std::string::npos);
  // A template outside the subset is refused at compile time, naming the construct.
  TempDir bad;
  kiln::test::write_tiny_llama_with_tokenizer(bad.path(), "real_tokenizers/mistral_v3", 32768);
  std::ofstream(bad / "chat_template.jinja") << "{% include 'other.jinja' %}";
  CHECK(kiln::test::run_command(kCli + " compile " + bad.path() + " -o " + (bad / "m.kplan"), &out) != 0);
  CHECK(out.find("chat_template.jinja") != std::string::npos);
  CHECK(out.find("'include' is not supported") != std::string::npos);
  CHECK(out.find("--no-chat-template") != std::string::npos);
  REQUIRE(kiln::test::run_command(kCli + " compile " + bad.path() + " -o " + (bad / "m.kplan") + " --no-chat-template",
                                  &out) == 0);
}

// Qwen2ForCausalLM, Qwen3ForCausalLM, GemmaForCausalLM, Gemma3ForCausalLM, Gemma2ForCausalLM,
// GraniteForCausalLM, SmolLM3ForCausalLM, PhiForCausalLM, Ernie4_5ForCausalLM and Olmo2ForCausalLM
// from folders as transformers saves them (and as the hub ships Gemma 1's and 3's, SmolLM3's, Phi-2's,
// ERNIE 4.5's and OLMo 2's configs): compile and greedy generate from the CLI
// give transformers' tokens; a layer type kiln does not know is refused naming the key.
TEST_CASE(
    "cli: EXAONE 3.0/3.5, 4.0 and MoE, InternLM3, IQuest-Coder, Apertus, Phi-3.5-MoE, GLM-4 (0414 and 9b), Qwen2, Qwen2-MoE, Qwen3, Seed-OSS, GPT-OSS, Helium, Arcee, Jais 2, Cohere, Cohere 2, Starcoder2, StableLM, OLMoE, Nemotron, GPT-NeoX, GPT-J, GPT-2, GPT-Neo, GPT-BigCode, BLOOM, MPT, DBRX, OPT, GLM-4.5, GLM-4.7-Flash, Youtu-LLM, MiniMax-M2, HyperCLOVAX, nanochat, VaultGemma, CWM, FlexOlmo, Solar Open, dots.llm1, Falcon, Gemma 1, 2 and 3, the text models of Gemma 3's, Mistral Small 3's, Ministral 3's, Qwen2.5-VL's, Qwen3-VL's and Qwen3-VL-MoE's image-text checkpoints, Granite, SmolLM3, Phi-2, ERNIE 4.5, ERNIE 4.5 MoE, HunYuan dense and MoE and OLMo 1, 2 and 3 checkpoints compile and generate transformers' greedy tokens") {
  for (const auto& fam_name : {std::pair<const char*, const char*>{"qwen2", "sliding_f32"},
                               {"qwen3", "untied_f32"},
                               {"gemma3", "pattern_f32"},
                               {"gemma", "hub_tied_f32"},
                               {"smollm3", "nope_tied_f32"},
                               {"phi", "hub_f32"},
                               {"ernie4_5", "tied_f32"},
                               {"ernie4_5_moe", "hub_tied_f32"},
                               {"hunyuan_v1_dense", "hub_ntk_tied_f32"},
                               {"hunyuan_v1_moe", "hub_tied_f32"},
                               {"olmo2", "hub_f32"},
                               {"granitemoe", "multipliers_top2_f32"},
                               {"qwen2_moe", "hub_step2_tied_f32"},
                               {"olmo3", "hub_tied_f32"},
                               {"glm4", "hub_tied_f32"},
                               {"glm", "chat_hf_f32"},
                               {"olmo", "hub_tied_f32"},
                               {"ministral3", "vlm_tied_f32"},
                               {"exaone4", "hybrid_f32"},
                               {"exaone", "hub_f32"},
                               {"exaone_moe", "hub_window_f32"},
                               {"internlm3", "hub_dynamic_f32"},
                               {"iquestcoder", "hub_f32"},
                               {"apertus", "hub_f32"},
                               {"phimoe", "hub_longrope_f32"},
                               {"jais2", "defaults_f32"},
                               {"seed_oss", "hub_tied_f32"},
                               {"gpt_oss", "hub_f32"},
                               {"helium", "hub_f32"},
                               {"arcee", "hub_yarn_f32"},
                               {"cohere", "qk_norm_f32"},
                               {"cohere2", "hub_f32"},
                               {"starcoder2", "hub_f32"},
                               {"stablelm", "qk_parallel_f32"},
                               {"olmoe", "hub_norm_f32"},
                               {"nemotron", "hub_f32"},
                               {"gpt_neox", "pythia_f32"},
                               {"glm4_moe", "air_f32"},
                               {"glm4_moe_lite", "hub_f32"},
                               {"youtu", "hub_tied_f32"},
                               {"solar_open", "hub_yarn_f32"},
                               {"minimax_m2", "hub_f32"},
                               {"hyperclovax", "peri_ln_f32"},
                               {"nanochat", "d_f32"},
                               {"vaultgemma", "softcap_untied_f32"},
                               {"cwm", "hub_defaults_f32"},
                               {"flex_olmo", "top2_bias_f32"},
                               {"dots1", "window_tied_f32"},
                               {"falcon", "falcon7b_f32"},
                               {"gptj", "hub_f32"},
                               {"gpt2", "hub_f32"},
                               {"gpt_neo", "hub_f32"},
                               {"gpt_bigcode", "starcoder_f32"},
                               {"bloom", "hub_f32"},
                               {"mpt", "hub_f32"},
                               {"dbrx", "hub_f32"},
                               {"opt", "hub_f32"},
                               {"gemma3", "vlm_untied_f32"},
                               {"mistral", "mistral3_f32"},
                               {"qwen2", "vl25_hub_f32"},
                               {"qwen3", "vl_hub_tied_f32"},
                               {"qwen3_moe", "vl_moe_f32"},
                               {"gemma2", "softcap_f32"},
                               {"granite", "multipliers_tied_f32"}}) {
    const std::string family = fam_name.first, name = fam_name.second;  // (CAPTURE cannot take a binding)
    CAPTURE(family);
    TempDir d;
    const std::string model = kiln::test::fixture(name, family);
    const auto ref = kiln::test::load_reference(model);
    std::string out;
    REQUIRE_MESSAGE(kiln::test::run_command(
                        kCli + " compile " + model + " -o " + (d / "q.kplan") + " --max-seq 32 --chunk 8", &out) == 0,
                    out);
    std::string ids, expect;
    for (int32_t t : ref.prompt_ids) ids += (ids.empty() ? "" : ",") + std::to_string(t);
    for (int32_t t : ref.greedy_ids) expect += (expect.empty() ? "" : " ") + std::to_string(t);
    REQUIRE(kiln::test::run_command(kCli + " generate " + (d / "q.kplan") + " --ids " + ids + " --max-new-tokens " +
                                        std::to_string(ref.greedy_ids.size() - ref.prompt_ids.size()) +
                                        " --output-ids 2>/dev/null",
                                    &out) == 0);
    CHECK(last_line(out) == expect);
    kiln::test::copy_dir(model, d / "sliding");
    std::ifstream in(model + "/config.json");
    nlohmann::json file = nlohmann::json::parse(in);
    nlohmann::json& cfg = file.contains("text_config") ? file["text_config"] : file;  // (the text model's)
    // (IQuestCoderConfig refuses use_sliding_window true before any layer type is read)
    if (family != "iquestcoder") cfg["use_sliding_window"] = true;
    cfg["layer_types"] = nlohmann::json::array();  // one per layer, one of them unknown
    const int64_t layers = (cfg.contains("n_layer")      ? cfg["n_layer"]
                            : cfg.contains("n_layers")   ? cfg["n_layers"]
                            : cfg.contains("num_layers") ? cfg["num_layers"]
                                                         : cfg["num_hidden_layers"])
                               .get<int64_t>();
    for (int64_t i = 0; i < layers; ++i)  // (GPT-J's attribute name: n_layer; GPT-Neo's num_layers)
      cfg["layer_types"].push_back(i == 0 ? "chunked_attention" : "full_attention");
    std::ofstream(d / "sliding/config.json") << file.dump();
    CHECK(kiln::test::run_command(kCli + " compile " + (d / "sliding") + " -o " + (d / "s.kplan"), &out) != 0);
    CHECK(out.find("layer_types") != std::string::npos);
    CHECK(out.find("chunked_attention") != std::string::npos);
  }
}
