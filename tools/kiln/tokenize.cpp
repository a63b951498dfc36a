// kiln tokenize, detokenize and chat-template: the plan's tokenizer and chat template through the
// public C API, as a host would call them. Many prompts from one file cost one plan load.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/error.h"
#include "compiler/json_util.h"
#include "tools/kiln/commands.h"

using kiln::CompileError;

namespace {

std::vector<int32_t> ids_of_text(const kiln_plan* plan, const std::string& text, bool add_special) {
  kiln_error err{};
  int64_t n = 0;
  std::vector<int32_t> ids(text.size() + 8);
  check(kiln_tokenize(plan, text.data(), text.size(), add_special ? 1 : 0, ids.data(), int64_t(ids.size()), &n, &err),
        err);
  if (n > int64_t(ids.size())) {  // more ids than bytes (added tokens never shrink, but be exact)
    ids.resize(size_t(n));
    check(kiln_tokenize(plan, text.data(), text.size(), add_special ? 1 : 0, ids.data(), n, &n, &err), err);
  }
  ids.resize(size_t(n));
  return ids;
}

// The prompts in a file: a JSON array of strings if its name ends in .json, else one prompt per
// line (without its line break). Regular files only, at most 100 MiB (read_text_file).
std::vector<std::string> read_prompts(const std::string& path) {
  const std::string all = kiln::read_text_file(path);
  std::vector<std::string> out;
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    const nlohmann::json j = kiln::parse_json_limited(all.data(), all.data() + all.size(), path);
    if (!j.is_array()) throw CompileError(path + ": not a JSON array of strings");
    for (const auto& s : j) {
      if (!s.is_string()) throw CompileError(path + ": element " + std::to_string(out.size()) + " is not a string");
      out.push_back(s.get<std::string>());
    }
    return out;
  }
  std::istringstream lines(all);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  return out;
}

std::string ids_text(const std::vector<int32_t>& ids, bool as_json) {
  std::string s = as_json ? "[" : "";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? (as_json ? ", " : " ") : "") + std::to_string(ids[i]);
  return as_json ? s + "]" : s;
}

}  // namespace

int run_tokenize(const TokenizeArgs& a) {
  if (a.has_prompt == !a.file.empty()) throw CompileError("give exactly one of -p/--prompt and --file");
  PlanHandle plan;
  kiln_error err{};
  check(kiln_plan_open(a.plan.c_str(), &plan.p, &err), err);
  const std::vector<std::string> prompts = a.has_prompt ? std::vector<std::string>{a.prompt} : read_prompts(a.file);
  std::string out = a.json && !a.has_prompt ? "[\n" : "";
  for (size_t i = 0; i < prompts.size(); ++i) {
    out += ids_text(ids_of_text(plan.p, prompts[i], !a.no_special), a.json);
    out += a.json && !a.has_prompt && i + 1 < prompts.size() ? ",\n" : "\n";
  }
  if (a.json && !a.has_prompt) out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int run_detokenize(const DetokenizeArgs& a) {
  PlanHandle plan;
  kiln_error err{};
  check(kiln_plan_open(a.plan.c_str(), &plan.p, &err), err);
  const std::vector<int32_t> ids = parse_ids(a.ids);
  kiln_plan_info info;
  check(kiln_plan_get_info(plan.p, &info, &err), err);
  for (size_t i = 0; i < ids.size(); ++i)  // (the C API decodes them to nothing; the CLI says so)
    if (ids[i] < 0 || ids[i] >= info.vocab_size)
      throw CompileError("--ids: " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                         " is out of range [0, " + std::to_string(info.vocab_size) + ")");
  size_t len = 0;
  std::string text(256, '\0');
  check(kiln_detokenize(plan.p, ids.data(), int64_t(ids.size()), a.skip_special ? 1 : 0, text.data(), text.size(), &len,
                        &err),
        err);
  if (len + 1 > text.size()) {
    text.assign(len + 1, '\0');
    check(kiln_detokenize(plan.p, ids.data(), int64_t(ids.size()), a.skip_special ? 1 : 0, text.data(), text.size(),
                          &len, &err),
          err);
  }
  text.resize(len);
  if (a.json) text = nlohmann::json(text).dump();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

int run_chat_template(const ChatTemplateArgs& a) {
  const std::string conversation = kiln::read_text_file(a.messages);
  if (conversation.find('\0') != std::string::npos) throw CompileError(a.messages + ": contains a NUL byte");
  PlanHandle plan;
  kiln_error err{};
  check(kiln_plan_open(a.plan.c_str(), &plan.p, &err), err);
  const int agp = a.add_generation_prompt ? 1 : 0;
  const std::string text = call_for_text([&](char* buf, size_t cap, size_t* len, kiln_error* e) {
    return kiln_chat_render(plan.p, conversation.c_str(), agp, buf, cap, len, e);
  });
  std::string out;
  if (a.ids) out = ids_text(ids_of_text(plan.p, text, false), a.json) + "\n";
  else if (a.json) out = nlohmann::json(text).dump() + "\n";
  else out = text;
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}
