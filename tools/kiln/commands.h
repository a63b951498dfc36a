// The kiln CLI's subcommands (tools/kiln/main.cpp parses the arguments): compile (compile.cpp),
// inspect (inspect.cpp), eval, generate and chat (generate.cpp), tokenize and detokenize
// (tokenize.cpp), txt2img (txt2img.cpp). Each
// throws on failure; main prints one "kiln: error: ..." line and exits non-zero.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "kiln/kiln.h"
#include "tools/kiln/run_options.h"

// --- shared by the subcommands (cli_util.cpp)
std::string human_bytes(uint64_t b);
// RAII holders for the C API handles.
struct PlanHandle {
  kiln_plan* p = nullptr;
  ~PlanHandle() { kiln_plan_close(p); }
};
struct ContextHandle {
  kiln_context* c = nullptr;
  ~ContextHandle() { kiln_context_destroy(c); }
};
// Throws the error's message when s is not KILN_OK.
void check(kiln_status s, const kiln_error& e);
void open_context(const std::string& plan_path, const RunOptions& ro, PlanHandle& plan, ContextHandle& ctx);
// "1, 2,3" or "1 2 3" → ids; throws on anything else.
std::vector<int32_t> parse_ids(const std::string& s);
// The text a C API call writes into (buf, cap, &len, &err): retried with the length it reports
// until the text fits (a chat template that reads the clock may render another length).
std::string call_for_text(const std::function<kiln_status(char*, size_t, size_t*, kiln_error*)>& f);

// Outputs must not replace the command's inputs. Whether `a` and `b` name the same file: the same
// existing file (through links), or, where one does not exist yet, the same name in the same folder.
bool same_file(const std::string& a, const std::string& b);
// Throws "<flag> <out> is <what> <input>: it would be replaced" when the existing file `out` is one of
// `files`, or a file of a kind kiln reads (.json, .safetensors, tokenizer files) inside one of `folders`
// (up to three levels down; a plan kept in its checkpoint's folder is not an input).
void refuse_overwriting_inputs(const std::string& flag, const std::string& out, const std::vector<std::string>& files,
                               const std::vector<std::string>& folders);

// --- the subcommands
int run_compile(kiln::CompileOptions o, const std::string& emit_c_prefix);
int run_inspect(const std::string& path, bool list_tensors, bool as_json);
int run_eval(const std::string& plan_path, const std::string& in_path, const std::string& out_path,
             const RunOptions& ro);

struct GenerateArgs {
  std::string plan, ids, prompt;
  bool has_ids = false, has_prompt = false;  // given on the command line (either may be empty)
  std::vector<std::string> stops;
  bool ignore_stop = false;
  int64_t max_new = 32;
  float temperature = 0.0f, top_p = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  int64_t eos = -1;
  bool output_ids = false;
  RunOptions run;
};

int run_generate(const GenerateArgs& a);

struct ChatArgs {
  std::string plan, system;
  int64_t max_new = 256;
  float temperature = 0.7f, top_p = 0.9f;
  int top_k = 0;
  uint64_t seed = 0;
  bool raw = false;
  RunOptions run;
};

int run_chat(const ChatArgs& a);

// tokenize.cpp
struct TokenizeArgs {
  std::string plan, prompt, file;
  bool has_prompt = false, json = false, no_special = false;
};
int run_tokenize(const TokenizeArgs& a);
struct DetokenizeArgs {
  std::string plan, ids;
  bool skip_special = false, json = false;
};
int run_detokenize(const DetokenizeArgs& a);
struct ChatTemplateArgs {
  std::string plan, messages;
  bool add_generation_prompt = false, ids = false, json = false;
};
int run_chat_template(const ChatTemplateArgs& a);
