// Every field of a plan's FlatBuffer, found through the schema's reflection data (plan.bfbs, which
// flatc writes next to plan_generated.h), so a test or a fuzzer can set any of them and re-seal
// the plan (plan_edit.h's rehash): each scalar field of every table, each element of every scalar
// vector, and the first byte of every string. The writer stores every field (force_defaults), so
// each one is present and can be overwritten in place. Used by tests/runtime/test_plan_mutants.cpp
// and the fuzzer's field mode (tests/fuzz/fuzz_plan.cpp), so it depends on no test framework.
#pragma once
#include <flatbuffers/reflection.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "plan_edit.h"

namespace kiln::test {

// One place to write: `offset` bytes into the plan file, `type` its FlatBuffers base type
// (reflection::String: a string's first byte).
struct FieldSite {
  std::string path;  // e.g. "programs[0].launches[3].int_attrs[1]"
  uint64_t offset;
  reflection::BaseType type;
};

class PlanFields {
 public:
  // The sites of `plan` (a whole plan file) under `schema` (plan.bfbs's bytes).
  PlanFields(const std::vector<uint8_t>& schema, const std::vector<uint8_t>& plan) : schema_(schema) {
    const uint8_t* fb = plan.data() + header_of(plan).fb_offset;
    base_ = plan.data();
    const reflection::Schema* s = reflection::GetSchema(schema_.data());
    visit(*flatbuffers::GetAnyRoot(fb), *s->root_table(), *s, "plan");
  }
  const std::vector<FieldSite>& sites() const { return sites_; }

 private:
  void add(const std::string& path, const uint8_t* p, reflection::BaseType t) {
    sites_.push_back({path, uint64_t(p - base_), t});
  }

  // The schema has no structs (a walker for them would be needed if one is added).
  static void no_struct(const reflection::Schema& s, const reflection::Field& f, const std::string& at) {
    if (s.objects()->Get(f.type()->index())->is_struct()) throw std::logic_error(at + ": structs are not walked");
  }

  void visit(const flatbuffers::Table& t, const reflection::Object& obj, const reflection::Schema& s,
             const std::string& path) {
    for (const reflection::Field* f : *obj.fields()) {
      const std::string at = path + "." + f->name()->str();
      const reflection::BaseType bt = f->type()->base_type();
      if (flatbuffers::IsScalar(bt)) {
        if (const uint8_t* p = t.GetAddressOf(f->offset())) add(at, p, bt);
      } else if (bt == reflection::String) {
        const flatbuffers::String* str = flatbuffers::GetFieldS(t, *f);
        if (str && str->size() > 0) add(at, reinterpret_cast<const uint8_t*>(str->c_str()), reflection::String);
      } else if (bt == reflection::Obj) {
        no_struct(s, *f, at);
        if (const flatbuffers::Table* sub = flatbuffers::GetFieldT(t, *f))
          visit(*sub, *s.objects()->Get(f->type()->index()), s, at);
      } else if (bt == reflection::Vector) {
        const reflection::BaseType et = f->type()->element();
        if (et == reflection::Obj) {
          no_struct(s, *f, at);
          const auto* v = flatbuffers::GetFieldV<flatbuffers::Offset<flatbuffers::Table>>(t, *f);
          for (flatbuffers::uoffset_t i = 0; v && i < v->size(); ++i)
            visit(*v->Get(i), *s.objects()->Get(f->type()->index()), s, at + "[" + std::to_string(i) + "]");
        } else if (et == reflection::String) {
          const auto* v = flatbuffers::GetFieldV<flatbuffers::Offset<flatbuffers::String>>(t, *f);
          for (flatbuffers::uoffset_t i = 0; v && i < v->size(); ++i)
            if (v->Get(i)->size() > 0)
              add(at + "[" + std::to_string(i) + "]", reinterpret_cast<const uint8_t*>(v->Get(i)->c_str()),
                  reflection::String);
        } else if (flatbuffers::IsScalar(et)) {
          const flatbuffers::VectorOfAny* v = flatbuffers::GetFieldAnyV(t, *f);
          for (flatbuffers::uoffset_t i = 0; v && i < v->size(); ++i)
            add(at + "[" + std::to_string(i) + "]", v->Data() + i * flatbuffers::GetTypeSize(et), et);
        }
      }
    }
  }

  std::vector<uint8_t> schema_;
  const uint8_t* base_ = nullptr;
  std::vector<FieldSite> sites_;
};

// Writes v at a scalar site as its type stores it (integers wrap to the width, as a C cast).
inline void write_site(uint8_t* plan, const FieldSite& s, int64_t i, double f) {
  uint8_t* p = plan + s.offset;
  auto put = [&](auto v) { std::memcpy(p, &v, sizeof(v)); };
  switch (s.type) {
    case reflection::Bool:
    case reflection::UByte:
    case reflection::UType:
    case reflection::Byte:
    case reflection::String:
      return put(uint8_t(i));
    case reflection::Short:
    case reflection::UShort:
      return put(uint16_t(i));
    case reflection::Int:
    case reflection::UInt:
      return put(uint32_t(i));
    case reflection::Long:
    case reflection::ULong:
      return put(uint64_t(i));
    case reflection::Float:  // a double past the float range becomes infinity, as a cast should
      return put(std::fabs(f) > double(FLT_MAX) ? (f > 0 ? INFINITY : -INFINITY) : float(f));
    case reflection::Double:
      return put(f);
    default:
      return;
  }
}

// The value stored at a site: as an integer (sign-extended for signed types; a string's first
// byte) and, for float fields, as a double.
inline std::pair<int64_t, double> read_site(const uint8_t* plan, const FieldSite& s) {
  const uint8_t* p = plan + s.offset;
  auto get = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (s.type) {
    case reflection::Float:
      return {0, double(get(float(0)))};
    case reflection::Double:
      return {0, get(double(0))};
    case reflection::Byte:
      return {get(int8_t(0)), 0};
    case reflection::Short:
      return {get(int16_t(0)), 0};
    case reflection::Int:
      return {get(int32_t(0)), 0};
    case reflection::Long:
    case reflection::ULong:
      return {int64_t(get(uint64_t(0))), 0};
    case reflection::UShort:
      return {get(uint16_t(0)), 0};
    case reflection::UInt:
      return {get(uint32_t(0)), 0};
    default:  // Bool, UByte, UType and a string's first byte
      return {get(uint8_t(0)), 0};
  }
}

inline bool is_float_site(const FieldSite& s) { return s.type == reflection::Float || s.type == reflection::Double; }

// The values each site is set to: the edges of its type and its neighbours.
inline std::vector<std::pair<int64_t, double>> mutations(const uint8_t* plan, const FieldSite& s) {
  const auto [v, vf] = read_site(plan, s);
  if (is_float_site(s))
    return {{0, 0.0}, {0, -vf}, {0, vf * 1e6 + 1}, {0, 1e300}, {0, -1e-300}, {0, std::nan("")}, {0, HUGE_VAL}};
  if (s.type == reflection::String) return {{0xFF, 0}, {0xC0, 0}, {0, 0}, {v ^ 0x20, 0}};
  const uint64_t u = uint64_t(v);  // neighbours wrap as the field would, without signed overflow
  std::vector<std::pair<int64_t, double>> out = {{0, 0},         {int64_t(u + 1), 0}, {int64_t(u - 1), 0},    {-1, 0},
                                                 {INT64_MAX, 0}, {INT64_MIN, 0},      {int64_t(u * 2 + 1), 0}};
  // 2^31: the sign bit of a 32-bit field (a 64-bit size of 2 GiB would only cost an allocation).
  if (flatbuffers::GetTypeSize(s.type) == 4) out.push_back({int64_t(1) << 31, 0});
  return out;
}

}  // namespace kiln::test
