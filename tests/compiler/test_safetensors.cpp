// The safetensors reader on good and malformed files: each failure names the file and the
// tensor, and never crashes.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "compiler/error.h"
#include "compiler/safetensors.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

// A file with the given header text and `data` bytes after it.
std::string make_file(const TempDir& d, const std::string& name, const std::string& header, size_t data) {
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = uint8_t((uint64_t(header.size()) >> (8 * i)) & 0xff);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + data, 0);
  const std::string path = d / name;
  kiln::test::write_bytes(path, bytes);
  return path;
}

std::string error_of(const std::string& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: a written file reads back exactly") {
  TempDir d;
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3f80, 0x4000};
  write_safetensors(d / "x.safetensors",
                    {{"a", DType::F32, {2, 3}, a.data(), 24}, {"b", DType::BF16, {2}, b.data(), 4}});
  auto f = SafetensorsFile::open(d / "x.safetensors");
  REQUIRE(f->tensors().size() == 2);
  const StTensor& ta = f->tensors().at("a");
  CHECK(ta.shape == std::vector<int64_t>{2, 3});
  CHECK(ta.dtype == DType::F32);
  CHECK(std::memcmp(ta.data, a.data(), 24) == 0);
  CHECK(f->tensors().at("b").dtype == DType::BF16);
}

TEST_CASE("safetensors: malformed files are rejected with the file and tensor named") {
  TempDir d;
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(error_of(make_file(d, "ok.safetensors", ok, 8)).empty());

  struct Case {
    const char* name;
    std::string header;
    size_t data;
    const char* expect;
  };
  const Case cases[] = {
      {"emptyheader", "", 0, "not valid JSON"},
      {"badjson", "{\"w\": [", 0, "not valid JSON"},
      {"notobj", "[1,2]", 0, "not a JSON object"},
      {"dtype", R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8, "unknown dtype 'F33'"},
      {"size", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "does not match shape"},
      {"bounds", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "outside"},
      {"reversed", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8, "outside"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, "overlap"},
      {"gap", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, "gap"},
      {"trailing", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8, "cover"},
      {"dup",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       8, "'a' appears twice"},
      {"negdim", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "negative"},
      {"hugedim", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8, "too large"},
      {"missing", R"({"w":{"dtype":"F32","shape":[2]}})", 8, "needs dtype, shape and data_offsets"},
      {"utf8", std::string("{\"w\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"), 8,
       "not valid JSON"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    CAPTURE(c.header);
    const std::string path = make_file(d, std::string(c.name) + ".safetensors", c.header, c.data);
    const std::string err = error_of(path);
    CHECK(err.find(path) != std::string::npos);
    CHECK(err.find(c.expect) != std::string::npos);
  }
  kiln::test::write_bytes(d / "short.safetensors", {1, 2, 3, 4});
  CHECK(error_of(d / "short.safetensors").find("too short") != std::string::npos);
  // A header length that points past the end of the file.
  std::vector<uint8_t> lying(16, 0);
  lying[0] = 0xff;
  lying[1] = 0xff;
  kiln::test::write_bytes(d / "lying.safetensors", lying);
  CHECK(error_of(d / "lying.safetensors").find("runs past the end") != std::string::npos);
  std::vector<uint8_t> huge(16, 0);
  huge[4] = 0x01;  // 2^32 bytes of header
  kiln::test::write_bytes(d / "huge.safetensors", huge);
  CHECK(error_of(d / "huge.safetensors").find("100 MB") != std::string::npos);
  CHECK(error_of(d / "absent.safetensors").find("cannot open") != std::string::npos);
}

TEST_CASE("safetensors: every truncation of a valid file is rejected") {
  TempDir d;
  std::vector<float> a(10, 1.5f);
  write_safetensors(d / "x.safetensors", {{"a", DType::F32, {10}, a.data(), 40}});
  const auto bytes = kiln::test::read_bytes(d / "x.safetensors");
  for (size_t n = 0; n < bytes.size(); ++n) {
    kiln::test::write_bytes(d / "t.safetensors", std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(n)));
    REQUIRE_FALSE(error_of(d / "t.safetensors").empty());
  }
}

TEST_CASE("checkpoint folders: shards, index problems and pickle files") {
  TempDir d;
  // The sharded fixture reads through its index.
  Checkpoint ck = Checkpoint::open_dir(kiln::test::fixture("sharded_f32"));
  CHECK(ck.find("model.embed_tokens.weight") != nullptr);
  CHECK(ck.find("lm_head.weight") != nullptr);

  auto err_of_dir = [](const std::string& dir) -> std::string {
    try {
      Checkpoint::open_dir(dir);
    } catch (const CompileError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(err_of_dir(d / "nope").find("not a directory") != std::string::npos);
  CHECK(err_of_dir(d.path()).find("no model.safetensors") != std::string::npos);
  kiln::test::write_bytes(d / "pytorch_model.bin", {1, 2, 3});
  CHECK(err_of_dir(d.path()).find("convert them to safetensors") != std::string::npos);

  TempDir e;
  kiln::test::copy_dir(kiln::test::fixture("sharded_f32"), e.path());
  auto write_index = [&](const std::string& body) {
    const std::string s = body;
    kiln::test::write_bytes(e / "model.safetensors.index.json", std::vector<uint8_t>(s.begin(), s.end()));
  };
  write_index(R"({"weight_map": {"model.norm.weight": "../outside.safetensors"}})");
  CHECK(err_of_dir(e.path()).find("must be a plain file name") != std::string::npos);
  write_index(R"({"weight_map": {"model.norm.weight": "/etc/passwd"}})");
  CHECK(err_of_dir(e.path()).find("must be a plain file name") != std::string::npos);
  write_index(R"({"weight_map": {"model.norm.weight": ".."}})");
  CHECK(err_of_dir(e.path()).find("must be a plain file name") != std::string::npos);
  write_index(R"({"weight_map": {"model.norm.weight": "a\u0000b"}})");
  CHECK(err_of_dir(e.path()).find("must be a plain file name") != std::string::npos);
  write_index(R"({"weight_map": {"model.norm.weight": "missing-shard.safetensors"}})");
  CHECK(err_of_dir(e.path()).find("missing") != std::string::npos);
  write_index(R"({"weight_map": {"model.norm.weight": "model..00003.safetensors"}})");  // (a plain name)
  CHECK(err_of_dir(e.path()).find("model..00003.safetensors") != std::string::npos);
  CHECK(err_of_dir(e.path()).find("plain file name") == std::string::npos);
  // JSON ends at a NUL byte for nlohmann's lexer: anything after one would go unread.
  write_index(std::string(R"({"weight_map": {}})") + std::string(1, '\0') + "garbage");
  CHECK(err_of_dir(e.path()).find("not valid JSON: a NUL byte at offset 18") != std::string::npos);
  // A shard that is a symlink leading outside the model folder is refused; one inside is fine.
  TempDir outside;
  kiln::test::copy_dir(kiln::test::fixture("sharded_f32"), outside / "copy");
  const std::string shard = "model-00002-of-00003.safetensors";
  REQUIRE(std::system(("rm '" + (e / shard) + "' && ln -s '" + (outside / "copy/") + shard + "' '" + (e / shard) + "'")
                          .c_str()) == 0);
  REQUIRE(
      std::system(("cp '" + kiln::test::fixture("sharded_f32") + "/model.safetensors.index.json' '" + e.path() + "/'")
                      .c_str()) == 0);
  CHECK(err_of_dir(e.path()).find("outside the model folder") != std::string::npos);
  REQUIRE(std::system(("rm '" + (e / shard) + "' && cp '" + (outside / "copy/") + shard + "' '" + (e / "real.bin") +
                       "' && ln -s real.bin '" + (e / shard) + "'")
                          .c_str()) == 0);
  CHECK(err_of_dir(e.path()).empty());
  write_index(R"({"weights": {}})");
  CHECK(err_of_dir(e.path()).find("no weight_map") != std::string::npos);
  write_index("{not json");
  CHECK(err_of_dir(e.path()).find("not valid JSON") != std::string::npos);
}
