// The compiler reports failures with CompileError (one clear line, naming the file and the
// tensor or key at fault). The CLI prints what() and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace kiln {

class CompileError : public std::runtime_error {
 public:
  explicit CompileError(const std::string& m) : std::runtime_error(m) {}
};

}  // namespace kiln
