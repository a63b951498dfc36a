// kiln: the command-line tool. compile (checkpoint → plan), inspect, eval (logits for given
// ids), generate, chat, tokenize, detokenize and txt2img; the subcommands are in
// tools/kiln/commands.h. All but compile and inspect run through the public C API, as a host would. Every failure
// prints one line "kiln: error: ..." on stderr and exits non-zero.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "compiler/error.h"
#include "compiler/lora.h"
#include "compiler/passes/quantize.h"
#include "kernels/matmul.h"
#include "runtime/mapped_file.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/txt2img.h"

namespace {

void add_run_options(CLI::App* cmd, RunOptions& ro) {
  cmd->add_option("--threads", ro.threads, "CPU threads (default: all cores)");
  cmd->add_option("--device", ro.device, "cpu, cuda or auto (default: cuda when a GPU is present)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_flag("--no-graphs", ro.no_graphs, "CUDA: replay launch by launch instead of captured graphs (debugging)");
  cmd->add_flag("--no-cublaslt", ro.no_cublaslt, "CUDA: run prefill GEMMs on kiln's own kernels, not cuBLASLt");
  cmd->add_flag("--huge-pages", ro.huge_pages,
                "CPU: read the weights from a copy in transparent huge pages (faster decode; costs the copy's "
                "memory and time at start)");
}

// generate and chat: how far the decode loop runs ahead of the host.
void add_in_flight_option(CLI::App* cmd, RunOptions& ro) {
  cmd->add_option("--in-flight", ro.in_flight,
                  "Decode steps in flight, each fed its token by the one before on the device (0 = the backend's "
                  "default: CPU 1, CUDA 3)")
      ->check(CLI::Range(0, 16));
}

}  // namespace

int kiln_main(int argc, char** argv);

namespace {

// A file kiln maps (a checkpoint's shard, a plan) that shrinks under it faults on the next read:
// say so, remove the output temporaries, and end as the signal would.
void on_sigbus(int sig) {
  static const char msg[] =
      "kiln: error: a file kiln had mapped (a checkpoint shard or the plan) was truncated or rewritten while in "
      "use (SIGBUS); replace such files by renaming a new one over them, never in place\n";
  kiln::remove_temps_of_this_process();
  (void)!::write(2, msg, sizeof(msg) - 1);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

// A write to stdout that failed (a full disk, /dev/full, a closed pipe with SIGPIPE ignored) is an
// error: the output is incomplete, so the exit status must not say it succeeded.
int main(int argc, char** argv) {
  const int rc = kiln_main(argc, argv);
  const bool flushed = std::fflush(stdout) == 0;
  const int e = errno;
  if (flushed && !std::ferror(stdout)) return rc;
  std::fprintf(stderr, "kiln: error: writing to standard output failed%s%s (the output is incomplete)\n",
               flushed ? "" : ": ", flushed ? "" : std::strerror(e));
  return rc ? rc : 1;
}

int kiln_main(int argc, char** argv) {
  kiln::remove_temps_on_signals();  // Ctrl-C during a write leaves no X.tmp.<pid>.<n> behind
  ::signal(SIGXFSZ, SIG_IGN);       // past `ulimit -f`: a write error (EFBIG) that removes them, not a kill
  ::signal(SIGBUS, on_sigbus);
  CLI::App app{"kiln: ahead-of-time model compiler and runtime"};
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION_STRING);
  app.require_subcommand(1);

  kiln::CompileOptions co;
  auto* compile = app.add_subcommand("compile", "Compile a checkpoint folder into a plan file");
  compile->add_option("model_dir", co.model_dir, "Checkpoint folder (config.json, *.safetensors)")->required();
  compile->add_option("-o,--output", co.output, "Plan file to write")->required();
  compile->add_option("--dtype", co.dtype, "Weight/KV dtype: f32, bf16 or f16 (default: the checkpoint's)");
  compile->add_option("--max-seq", co.max_seq, "Tokens per sequence (default: min(max_position_embeddings, 2048))");
  compile->add_option("--batch", co.batch, "Sequences per replay (default 1)");
  compile->add_option(
      "--chunk", co.chunk,
      "Prompt tokens per prefill replay (default: min(64, max-seq); min(128, max-seq) in a CPU-only plan)");
  std::string emit_c_prefix;
  compile->add_option("--emit-c", emit_c_prefix, "Also write PREFIX.c/PREFIX.h embedding the plan as a byte array");
  compile->add_flag("--no-tokenizer", co.no_tokenizer, "Leave the tokenizer out (the plan then takes token ids only)");
  compile->add_flag("--no-chat-template", co.no_chat_template,
                    "Embed the tokenizer without its chat template (kiln chat then needs --raw)");
  compile->add_flag("--allow-unknown-config", co.allow_unknown_config,
                    "Compile although a config sets keys kiln does not model (they may change the model); each "
                    "is noted in the plan instead of refused");
  compile->add_option(
      "--quantize", co.quantize,
      "Weight-only quantization of the matmul weights: int8 (per-row scales), int4 (symmetric, a "
      "scale per --group-size values), fp8 (e4m3, per-row scales, or an FP8 checkpoint's blocks; "
      "CPU plans unless --target asks for CUDA) or none (also: dequantize a pre-quantized checkpoint, which otherwise "
      "stays int8, int4 or FP8 as shipped; DeepSeek-layout FP8 compiled with --dtype is upcast to it)");
  compile->add_option("--group-size", co.group_size,
                      "With --quantize int4: values per scale along each row, a multiple of 32 (default: 128, or "
                      "the largest of 96, 64, 32 that divides a weight's rows; a W4A16 checkpoint's own)");
  compile->add_flag("--quantize-head", co.quantize_head, "With --quantize int8, int4 or fp8: the LM head too");
  compile->add_flag("--asymmetric", co.asymmetric,
                    "With --quantize int4: a zero point per group too, over each group's [min, max] "
                    "(compressed-tensors' asymmetric formula)");
  compile
      ->add_option("--target", co.target,
                   "Backends to compile for: cpu, cuda (sm_90) or all (default; cpu with int8, int4 or fp8 weights)")
      ->check(CLI::IsMember({"cpu", "cuda", "all"}));
  std::vector<std::string> lora_args;
  compile->add_option("--lora", lora_args, "PEFT LoRA adapter folder to merge, DIR or DIR:WEIGHT (repeatable)")
      ->allow_extra_args(false);  // (one value per --lora: the next word is not another)
  // Diffusion pipelines (folders with model_index.json)
  compile->add_option("--height", co.height, "Diffusion: image height in pixels (default: the UNet's sample_size x 8)");
  compile->add_option("--width", co.width, "Diffusion: image width in pixels (default: the UNet's sample_size x 8)");
  compile->add_option("--steps", co.steps, "Diffusion: denoising steps (default 30)");
  compile->add_option("--sampler", co.sampler, "Diffusion: ddim, euler (default), euler_a, dpmpp_2m, vp_sde or pf_ode");
  compile->add_option("--guidance", co.guidance, "Diffusion: classifier-free guidance scale (default 7.5; <= 1: none)");
  compile->add_option("--controlnet", co.controlnet, "Diffusion: a ControlNetModel folder to compile in");
  compile->add_option("--control-scale", co.control_scale, "Diffusion: ControlNet conditioning scale (default 1)");

  std::string inspect_path;
  bool list_tensors = false;
  auto* inspect = app.add_subcommand("inspect", "Verify a plan and print its programs, memory and hashes");
  inspect->add_option("plan", inspect_path, "Plan file")->required();
  inspect->add_flag("--tensors", list_tensors, "Also list every tensor");
  bool inspect_as_json = false;
  inspect->add_flag("--json", inspect_as_json, "Print everything as one JSON document");

  std::string eval_plan, eval_in, eval_out;
  RunOptions eval_run;
  auto* eval = app.add_subcommand("eval", "Logits for every position of the prompts in a safetensors file");
  eval->add_option("plan", eval_plan, "Plan file")->required();
  eval->add_option("--input", eval_in, "safetensors with input_ids (int64 or int32, [batch, tokens])")->required();
  eval->add_option("--output", eval_out, "safetensors to write logits (float32, [batch, tokens, vocab]) to")
      ->required();
  add_run_options(eval, eval_run);

  GenerateArgs ga;
  auto* gen = app.add_subcommand("generate",
                                 "Generate tokens after a prompt (token ids, or text through the plan's tokenizer)");
  gen->add_option("plan", ga.plan, "Plan file")->required();
  auto* gen_ids = gen->add_option("--ids", ga.ids, "Prompt token ids, comma-separated");
  auto* gen_prompt = gen->add_option("-p,--prompt", ga.prompt,
                                     "Prompt text (needs a plan with a tokenizer); the reply streams as text");
  gen->add_option("--stop", ga.stops, "Stop when the generated text contains this string (repeatable)")
      ->allow_extra_args(false);  // (one value per --stop: `--stop . PLAN` leaves PLAN the plan)
  gen->add_flag("--ignore-eos", ga.ignore_stop, "Do not stop at the tokenizer's end-of-sequence tokens");
  gen->add_option("--max-new-tokens", ga.max_new, "Tokens to generate (default 32)");
  gen->add_option("--temperature", ga.temperature, "0 = greedy (default)");
  gen->add_option("--top-k", ga.top_k, "Keep the k most likely tokens (0 = off)");
  gen->add_option("--top-p", ga.top_p, "Nucleus sampling mass (1 = off)");
  gen->add_option("--seed", ga.seed, "Sampling seed (default 0)");
  gen->add_option("--eos", ga.eos, "Stop after this token id (default: none)");
  gen->add_flag("--output-ids", ga.output_ids, "Print prompt + generated ids as the last line");
  add_run_options(gen, ga.run);
  add_in_flight_option(gen, ga.run);

  ChatArgs ca;
  auto* chat = app.add_subcommand("chat", "Chat interactively in the model's chat format (one user turn per line)");
  chat->add_option("plan", ca.plan, "Plan file")->required();
  chat->add_option("--system", ca.system, "System message");
  chat->add_option("--max-new-tokens", ca.max_new, "Longest reply in tokens (default 256)");
  chat->add_option("--temperature", ca.temperature, "Sampling temperature (default 0.7; 0 = greedy)");
  chat->add_option("--top-k", ca.top_k, "Keep the k most likely tokens (0 = off)");
  chat->add_option("--top-p", ca.top_p, "Nucleus sampling mass (default 0.9)");
  chat->add_option("--seed", ca.seed, "Sampling seed");
  chat->add_flag("--raw", ca.raw, "No chat template: plain text in, plain text out (for models without one)");
  add_run_options(chat, ca.run);
  add_in_flight_option(chat, ca.run);

  TokenizeArgs tka;
  auto* tokz = app.add_subcommand("tokenize", "Token ids of text through the plan's tokenizer (BOS as it adds it)");
  tokz->add_option("plan", tka.plan, "Plan file")->required();
  auto* tokz_prompt = tokz->add_option("-p,--prompt", tka.prompt, "Text to tokenize");
  tokz->add_option("--file", tka.file,
                   "Many texts: a JSON array of strings, or one text per line; one line of ids each");
  tokz->add_flag("--json", tka.json, "Print JSON arrays of ids");
  tokz->add_flag("--no-special", tka.no_special, "Do not add the tokens the post-processor adds (BOS)");
  DetokenizeArgs dta;
  auto* detok = app.add_subcommand("detokenize", "Text of token ids through the plan's tokenizer");
  detok->add_option("plan", dta.plan, "Plan file")->required();
  detok->add_option("--ids", dta.ids, "Token ids, comma-separated")->required();
  detok->add_flag("--skip-special", dta.skip_special, "Leave special tokens out of the text");
  detok->add_flag("--json", dta.json, "Print the text as a JSON string");

  ChatTemplateArgs cta;
  auto* ctmpl = app.add_subcommand(
      "chat-template", "Render the plan's chat template for a conversation, as transformers' apply_chat_template does");
  ctmpl->add_option("plan", cta.plan, "Plan file")->required();
  ctmpl
      ->add_option("--messages", cta.messages,
                   "JSON file: an array of messages, or {\"messages\": [...], other template variables (tools, ...)}")
      ->required();
  ctmpl->add_flag("--add-generation-prompt", cta.add_generation_prompt,
                  "End with the header that starts the assistant's reply");
  ctmpl->add_flag("--ids", cta.ids, "Print the token ids of the rendered text (no BOS added: the template writes it)");
  ctmpl->add_flag("--json", cta.json, "Print the text as a JSON string (with --ids: a JSON array)");

  Txt2ImgArgs ta;
  auto* t2i =
      app.add_subcommand("txt2img", "Generate an image from a text-to-image plan (a compiled diffusers pipeline)");
  t2i->add_option("plan", ta.plan, "Plan file")->required();
  t2i->add_option("-p,--prompt", ta.prompt, "What to draw")->required();
  t2i->add_option("--negative", ta.negative, "Negative prompt (default empty; needs guidance > 1 at compile time)");
  t2i->add_option("--seed", ta.seed, "Noise seed (default 0); the same seed gives the same image on every backend");
  t2i->add_option("-o,--output", ta.output, "PNG file to write")->required();
  t2i->add_option("--control", ta.control, "Control image (PNG) for a plan compiled with --controlnet");
  add_run_options(t2i, ta.run);
  t2i->add_flag("--progress", ta.progress,
                "Report each step on stderr (replays step by step instead of the whole loop at once)");

  // A first word that names no command (CLI11 would say only that one is required).
  std::string names;
  bool known = false;
  for (const CLI::App* sub : app.get_subcommands({})) {
    names += (names.empty() ? "" : ", ") + sub->get_name();
    known = known || (argc > 1 && sub->get_name() == argv[1]);
  }
  if (argc > 1 && argv[1][0] != '-' && !known) {
    std::fprintf(stderr, "kiln: error: unknown command '%s' (commands: %s; see kiln --help)\n", argv[1], names.c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // A usage error in the one-line format of every other failure (CLI11 may write several).
    std::string msg = e.what();
    for (char& ch : msg)
      if (ch == '\n') ch = ' ';
    // ("--max-new-tokens = 08", "Value 08 not in range": CLI11 read the leading 0 as octal, where 8
    // is no digit)
    for (size_t i = 0; i + 1 < msg.size(); ++i) {
      const bool word_start =
          i == 0 || msg[i - 1] == ' ' || msg[i - 1] == '=' || msg[i - 1] == '-' || msg[i - 1] == '+';
      if (word_start && msg[i] == '0' && std::isdigit(uint8_t(msg[i + 1]))) {
        msg += ": a leading 0 reads a whole number as octal; write it without";
        break;
      }
    }
    std::fprintf(stderr, "kiln: error: %s (see kiln --help)\n", msg.c_str());
    return 2;
  }
  try {
    // CLI11 reads an empty value of a number option (--guidance '') as 0, which for most options means
    // "the default" (and for --guidance no guidance): refused, as a value that is not a number is. It
    // reads a whole number with a leading 0 as octal (--height 064 as 52): refused too.
    for (const CLI::App* sub : app.get_subcommands())
      for (const CLI::Option* opt : sub->get_options()) {
        const std::string type = opt->get_type_name();
        const bool whole = type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0;
        const bool number = whole || type.rfind("FLOAT", 0) == 0;
        for (const std::string& r : opt->results()) {
          if (number && r.empty()) throw std::invalid_argument(opt->get_name() + " '' is not a number");
          const size_t at = r.find_first_not_of(" \t+-");  // ("00" is 0 either way)
          if (whole && at != std::string::npos && r[at] == '0' && at + 1 < r.size() &&
              std::isdigit(uint8_t(r[at + 1])) && r.find_first_of("123456789", at) != std::string::npos)
            throw std::invalid_argument(opt->get_name() + " " + r +
                                        " has a leading 0, which would read it as octal: write it without");
        }
      }
    // Sampling and seed values out of their range, which the C API would read as "off" or wrap: refused
    // as typed (transformers refuses top_p outside (0, 1] and a negative top_k too).
    for (CLI::App* sub : {gen, chat, t2i}) {
      if (!*sub) continue;
      auto typed = [&](const char* name) -> const std::string* {
        const CLI::Option* o = sub->get_option_no_throw(name);
        return o && o->count() > 0 ? &o->results().back() : nullptr;
      };
      // (strtod: CLI11 accepted the text as a number; 1e999 is read as infinity, not thrown)
      auto number = [](const std::string& v) { return std::strtod(v.c_str(), nullptr); };
      if (const std::string* v = typed("--top-k"); v && number(*v) < 0)
        throw std::invalid_argument("--top-k " + *v + " is negative (0 is off)");
      if (const std::string* v = typed("--top-p"); v && !(number(*v) > 0 && number(*v) <= 1))
        throw std::invalid_argument("--top-p " + *v + " is not in (0, 1] (1 is off)");
      if (const std::string* v = typed("--eos"); v && number(*v) < 0)
        throw std::invalid_argument("--eos " + *v + " is not a token id");
      if (const std::string* v = typed("--seed")) {  // 0 to 2^64 − 1 (decimal, or hex as CLI11 reads it)
        const size_t at = v->find_first_not_of(" \t");
        errno = 0;
        std::strtoull(v->c_str(), nullptr, 0);
        if (at == std::string::npos || (*v)[at] == '-' || errno == ERANGE)
          throw std::invalid_argument("--seed " + *v + " is not a whole number from 0 to 18446744073709551615");
      }
    }
    if (*compile) {
      // '' and 0 are what the compiler reads as "not given": typed, they are refused as it refuses other
      // bad values (--group-size first as a valid size would be: it needs --quantize int4).
      for (const auto& [name, value] : {std::pair<const char*, int64_t>{"--max-seq", co.max_seq},
                                        {"--chunk", co.chunk},
                                        {"--height", co.height},
                                        {"--width", co.width}})
        if (compile->get_option(name)->count() > 0 && value == 0)
          throw std::invalid_argument(std::string(name) +
                                      " 0 is not a positive number (left out, the default applies)");
      if (compile->get_option("--quantize")->count() > 0 && co.quantize.empty())
        throw kiln::CompileError(kiln::quantize_scheme_error(""));
      if (const CLI::Option* gs = compile->get_option("--group-size"); gs->count() > 0 && co.group_size == 0) {
        kiln::parse_group_size(kiln::parse_quantize(co.quantize), kiln::kI4GroupMultiple);
        throw kiln::CompileError(kiln::group_size_error(gs->results().front()));  // ("0", "00", …)
      }
      for (const std::string& a : lora_args) co.lora.push_back(kiln::parse_lora_spec(a));
      return run_compile(co, emit_c_prefix);
    }
    if (*inspect) return run_inspect(inspect_path, list_tensors, inspect_as_json);
    if (*eval) return run_eval(eval_plan, eval_in, eval_out, eval_run);
    if (*gen) {
      ga.has_ids = gen_ids->count() > 0;  // an empty -p "" is a prompt (the tokenizer's BOS alone)
      ga.has_prompt = gen_prompt->count() > 0;
      return run_generate(ga);
    }
    if (*chat) return run_chat(ca);
    if (*tokz) {
      tka.has_prompt = tokz_prompt->count() > 0;
      return run_tokenize(tka);
    }
    if (*detok) return run_detokenize(dta);
    if (*ctmpl) return run_chat_template(cta);
    if (*t2i) return run_txt2img(ta);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kiln: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
