// Checks the compiler tests share (doctest: not for the fuzzers, which link test_util without it).
#pragma once
#include <doctest/doctest.h>

#include <string>

#include "compiler/compile.h"
#include "compiler/safetensors.h"
#include "test_util.h"

namespace kiln::test {

// Compiling with o fails with a message that contains `expect`, and writes no plan at o.output.
inline void check_compile_refused(const CompileOptions& o, const std::string& expect) {
  const std::string err = compile_error(o);
  CHECK_MESSAGE(err.find(expect) != std::string::npos, "expected \"" << expect << "\" in: " << err);
  CHECK_FALSE(path_exists(o.output));
}

}  // namespace kiln::test
