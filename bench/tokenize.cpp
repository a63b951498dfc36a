// kiln-bench-tokenize: encode speed of a model folder's tokenizer (as `kiln compile` embeds it)
// on a text file, one thread, the whole file as one text: the median of --runs encodes, after one
// warm-up. bench/tokenizer_vs_hf.py runs it next to HF tokenizers on the same file.
//   kiln-bench-tokenize MODEL_DIR TEXT_FILE [--runs N] [--json] [--ids-out FILE]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/tokenizer_reader.h"
#include "runtime/tokenizer.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln-bench-tokenize: encode speed of a tokenizer.json on a text file (one thread)"};
  std::string dir, file;
  int runs = 5;
  bool json = false;
  std::string ids_out;
  app.add_option("model_dir", dir, "folder with tokenizer.json (and tokenizer_config.json)")->required();
  app.add_option("text_file", file, "the text to encode, as one string")->required();
  app.add_option("--runs", runs, "timed encodes (the median is reported)")->check(CLI::Range(1, 1000));
  app.add_flag("--json", json, "print one JSON object");
  app.add_option("--ids-out", ids_out, "write the ids, one per line (to compare with another tokenizer)");
  CLI11_PARSE(app, argc, argv);
  try {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const auto t_load = std::chrono::steady_clock::now();
    kiln::TokenizerData d;
    std::string notes;
    if (!kiln::read_hf_tokenizer(dir, &d, &notes, false)) throw std::runtime_error(dir + " has no tokenizer.json");
    const auto t_read = std::chrono::steady_clock::now();
    // Tokenizer::create alone, what a plan load pays per tokenizer: the median of 3.
    std::vector<double> create_ms;
    for (int r = 0; r < 3; ++r) {
      kiln::TokenizerData copy = d;
      const auto t0 = std::chrono::steady_clock::now();
      auto t = kiln::Tokenizer::create(std::move(copy));
      create_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (!t.is_ok()) throw std::runtime_error(t.status().message());
    }
    std::sort(create_ms.begin(), create_ms.end());
    auto tok = kiln::Tokenizer::create(std::move(d));
    if (!tok.is_ok()) throw std::runtime_error(tok.status().message());
    const double load_ms = std::chrono::duration<double, std::milli>(t_read - t_load).count() + create_ms[1];
    const std::vector<int32_t> ids = tok.value()->encode(text, false);  // warm-up
    size_t n_ids = ids.size();
    if (!ids_out.empty()) {
      std::ofstream o(ids_out);
      for (int32_t id : ids) o << id << "\n";
      if (!o) throw std::runtime_error("cannot write " + ids_out);
    }
    std::vector<double> ms;
    for (int r = 0; r < runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      n_ids = tok.value()->encode(text, false).size();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2], mb = double(text.size()) / 1e6;
    if (json)
      std::printf(
          "{\"bytes\": %zu, \"ids\": %zu, \"median_ms\": %.3f, \"min_ms\": %.3f, \"load_ms\": %.1f, "
          "\"create_ms\": %.1f}\n",
          text.size(), n_ids, med, ms.front(), load_ms, create_ms[1]);
    else
      std::printf(
          "%zu bytes -> %zu ids: median %.1f ms (%.2f MB/s) over %d runs; tokenizer load %.0f ms "
          "(Tokenizer::create %.1f ms, median of 3)\n",
          text.size(), n_ids, med, mb / (med / 1e3), runs, load_ms, create_ms[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln-bench-tokenize: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
