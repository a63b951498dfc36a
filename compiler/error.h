// The compiler reports failures with CompileError (one clear line, naming the file and the
// tensor or key at fault). The CLI prints what() and exits non-zero.
#pragma once
#include <cstdio>
#include <stdexcept>
#include <string>

namespace kiln {

class CompileError : public std::runtime_error {
 public:
  explicit CompileError(const std::string& m) : std::runtime_error(m) {}
};

// x as printf's %g ("1e+06", "60000"): a float for a message, short where std::to_string prints 40 digits.
inline std::string short_float(float x) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g", double(x));
  return b;
}

}  // namespace kiln
