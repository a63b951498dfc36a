// Parsing of the JSON files a user hands the compiler (config.json, index and adapter
// configs, safetensors headers), with limits: at most kMaxJsonBytes of text and kMaxJsonDepth
// levels of nesting, so a hostile file cannot make the parser eat memory. Throws CompileError
// naming `what` (usually the file).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace kiln {

constexpr size_t kMaxJsonBytes = size_t(100) << 20;  // the safetensors header limit
constexpr int kMaxJsonDepth = 32;

// on_key(depth, key) is called for every object key (depth 1 = top level).
nlohmann::json parse_json_limited(const char* begin, const char* end, const std::string& what,
                                  const std::function<void(int, const std::string&)>& on_key = nullptr);
// Reads a whole file (at most kMaxJsonBytes) into a string.
std::string read_text_file(const std::string& path);
// Reads a whole file, then parses it as above.
nlohmann::json read_json_file(const std::string& path, std::string* text = nullptr);

}  // namespace kiln
