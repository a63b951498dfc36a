#include "compiler/json_util.h"

#include <cstring>

#include "compiler/error.h"
#include "runtime/mapped_file.h"

namespace kiln {

nlohmann::json parse_json_limited(const char* begin, const char* end, const std::string& what,
                                  const std::function<void(int, const std::string&)>& on_key) {
  using json = nlohmann::json;
  if (size_t(end - begin) > kMaxJsonBytes) throw CompileError(what + ": JSON text is over 100 MB");
  // nlohmann's lexer ends the text at a NUL byte: what follows one would be dropped unread. JSON
  // has no NUL outside strings (where it is written \u0000), and Python's json refuses one.
  if (const void* nul = std::memchr(begin, 0, size_t(end - begin)))
    throw CompileError(what + ": not valid JSON: a NUL byte at offset " +
                       std::to_string(static_cast<const char*>(nul) - begin));
  try {
    return json::parse(begin, end, [&](int depth, json::parse_event_t ev, json& parsed) {
      if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) && depth >= kMaxJsonDepth)
        throw CompileError(what + ": JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
      if (ev == json::parse_event_t::key && on_key) on_key(depth, parsed.get<std::string>());
      return true;
    });
  } catch (const json::exception& e) {
    throw CompileError(what + ": not valid JSON: " + e.what());
  }
}

std::string read_text_file(const std::string& path) {
  auto f = MappedFile::open(path);  // regular files only: a FIFO or a device is refused, never waited on
  if (!f.is_ok()) throw CompileError(f.status().message());
  if (f.value()->size() > kMaxJsonBytes) throw CompileError(path + ": file is over 100 MB");
  return std::string(reinterpret_cast<const char*>(f.value()->data()), f.value()->size());
}

nlohmann::json read_json_file(const std::string& path, std::string* text) {
  std::string s = read_text_file(path);
  nlohmann::json j = parse_json_limited(s.data(), s.data() + s.size(), path);
  if (text) *text = std::move(s);
  return j;
}

}  // namespace kiln
