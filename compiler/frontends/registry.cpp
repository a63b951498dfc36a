// The frontends compile_model knows: one line per model family.
#include <cctype>

#include "compiler/config_reader.h"
#include "compiler/error.h"
#include "compiler/frontends/frontend.h"
#include "compiler/json_util.h"

namespace kiln {

extern const Frontend kLlamaFrontend;      // compiler/frontends/llama.cpp
extern const Frontend kDeepseekFrontend;   // compiler/frontends/deepseek.cpp
extern const Frontend kDiffusionFrontend;  // compiler/frontends/diffusion_pipeline.cpp

const std::vector<const Frontend*>& frontends() {
  static const std::vector<const Frontend*> all = {&kLlamaFrontend, &kDeepseekFrontend, &kDiffusionFrontend};
  return all;
}

std::string supported_architectures() {
  std::string s;
  for (const Frontend* f : frontends())
    for (const char* a : f->architectures)
      if (std::isupper(static_cast<unsigned char>(a[0])))  // (the classes; model_types are lower case)
        s += (s.empty() ? "" : ", ") + std::string(a);
  return s;
}

const Frontend& frontend_for(const std::string& dir) {
  for (const Frontend* f : frontends())
    if (f->reads_folder && f->reads_folder(dir)) return *f;
  const std::string config_path = dir + "/config.json";
  const nlohmann::json j = read_json_file(config_path);
  if (!j.is_object()) throw CompileError(config_path + ": not a JSON object");
  const std::string arch = ConfigReader(j, config_path).model_architecture();
  for (const Frontend* f : frontends())
    for (const char* a : f->architectures)
      if (arch == a) return *f;
  throw CompileError(config_path + ": architecture '" + arch + "' is not supported (supported: " +
                     supported_architectures() + ", or a diffusers pipeline folder with model_index.json)");
}

}  // namespace kiln
