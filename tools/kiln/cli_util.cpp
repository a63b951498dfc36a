// Helpers the kiln CLI's subcommands share (tools/kiln/commands.h).
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include "compiler/error.h"
#include "tools/kiln/commands.h"

using kiln::CompileError;

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

void check(kiln_status s, const kiln_error& e) {
  if (s != KILN_OK) throw CompileError(e.message[0] ? e.message : kiln_status_string(s));
}

void open_context(const std::string& plan_path, const RunOptions& ro, PlanHandle& plan, ContextHandle& ctx) {
  kiln_error err{};
  check(kiln_plan_open(plan_path.c_str(), &plan.p, &err), err);
  const kiln_context_options o = to_context_options(ro);
  check(kiln_context_create_with(plan.p, &o, &ctx.c, &err), err);
  // On CUDA the setup is worth a line: the graphs captured (or stream mode) and the GEMM path.
  if (std::string(kiln_context_backend(ctx.c)) == "cuda") std::fprintf(stderr, "%s\n", kiln_context_describe(ctx.c));
}

namespace {

int32_t parse_id(const std::string& item) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(item, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != item.size() || v < 0 || v > INT32_MAX) throw CompileError("--ids entry '" + item + "' is not a token id");
  return int32_t(v);
}

}  // namespace

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::stringstream words(item);  // "1 2 3" (as tokenize and --output-ids print ids) works too
    std::string word;
    size_t n = 0;
    for (; words >> word; ++n) ids.push_back(parse_id(word));
    if (n == 0) throw CompileError("--ids has an empty entry in '" + s + "'");
  }
  const size_t last = s.find_last_not_of(" \t\r\n");
  if (last != std::string::npos && s[last] == ',') throw CompileError("--ids has an empty entry in '" + s + "'");
  if (ids.empty()) throw CompileError("--ids is empty: give at least one token id");
  return ids;
}

std::string call_for_text(const std::function<kiln_status(char*, size_t, size_t*, kiln_error*)>& f) {
  std::string buf(size_t(64) << 10, '\0');
  for (int attempt = 0; attempt < 4; ++attempt) {
    size_t len = 0;
    kiln_error err{};
    check(f(buf.data(), buf.size(), &len, &err), err);
    if (len < buf.size()) return buf.substr(0, len);
    buf.assign(len + 1 + len / 8, '\0');
  }
  throw kiln::CompileError("the text kept changing length between calls");
}

namespace {

// realpath of the folder part, then the last name (a path that need not exist yet).
std::string canonical_name(const std::string& p) {
  const size_t slash = p.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  char buf[PATH_MAX];
  if (!::realpath(dir.c_str(), buf)) return p;
  return std::string(buf) + "/" + base;
}

// The kinds of file a checkpoint, adapter or pipeline folder gives kiln to read (configs, tensors,
// tokenizer files); anything else there (a plan kept beside its checkpoint, C files) is not an input.
bool input_kind(const std::string& name) {
  for (const char* ext : {".json", ".safetensors", ".txt", ".model", ".jinja", ".bin"})
    if (name.size() >= std::strlen(ext) && name.compare(name.size() - std::strlen(ext), std::string::npos, ext) == 0)
      return true;
  return false;
}

bool find_in(const std::string& folder, const struct stat& target, int depth, std::string* found) {
  DIR* d = ::opendir(folder.c_str());
  if (!d) return false;
  bool hit = false;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = folder + "/" + name;
    struct stat st, lst;
    if (::stat(path.c_str(), &st) != 0 || ::lstat(path.c_str(), &lst) != 0) continue;
    if (S_ISREG(st.st_mode) && input_kind(name) && st.st_dev == target.st_dev && st.st_ino == target.st_ino) {
      *found = path;
      hit = true;
    } else if (S_ISDIR(lst.st_mode) && depth > 0) {  // (not into linked folders)
      hit = find_in(path, target, depth - 1, found);
    }
    if (hit) break;
  }
  ::closedir(d);
  return hit;
}

}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  const bool ea = ::stat(a.c_str(), &sa) == 0, eb = ::stat(b.c_str(), &sb) == 0;
  if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return canonical_name(a) == canonical_name(b);
}

void refuse_overwriting_inputs(const std::string& flag, const std::string& out, const std::vector<std::string>& files,
                               const std::vector<std::string>& folders) {
  struct stat so;
  if (::stat(out.c_str(), &so) != 0 || !S_ISREG(so.st_mode)) return;  // (absent: nothing it could replace)
  for (const std::string& f : files)
    if (!f.empty() && same_file(out, f))
      throw CompileError(flag + " " + out + " is the input " + f + ": it would be replaced");
  std::string found;
  for (const std::string& dir : folders)
    if (!dir.empty() && find_in(dir, so, 3, &found))
      throw CompileError(flag + " " + out + " is " + found + ", an input of this command: it would be replaced");
}
