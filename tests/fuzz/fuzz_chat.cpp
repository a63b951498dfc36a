// libFuzzer target for chat templates (runtime/jinja.h), which ship with a checkpoint and so
// are untrusted: the first byte picks a mode.
// - 0: the rest is a template, rendered for a fixed two-message conversation;
// - 1: the rest is "template \0 conversation JSON" (an array of messages or an object with
//   "messages"), rendered through chat_context as kiln_chat_render does;
// - 2: the rest is JSON text: parse_json, then to_json of what it parsed must parse again.
// Every render runs under small limits, so a template that loops or explodes ends with a
// Status; a crash, a sanitizer report or a hang is the finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/jinja.h"

namespace {

using kiln::jinja::Value;

Value conversation() {
  auto v = kiln::jinja::parse_json(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \u00e9 <b>"},
          {"role": "assistant", "content": "Hello", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
          {"role": "user", "content": "again"}])");
  if (!v.is_ok()) std::abort();
  return v.take();
}

kiln::jinja::Limits limits() {
  kiln::jinja::Limits l;
  l.max_steps = 100'000;
  l.max_output = 1 << 20;
  l.max_call_depth = 16;
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
  static const Value messages = conversation();
  std::tm now{};
  now.tm_year = 126, now.tm_mon = 6, now.tm_mday = 26, now.tm_hour = 12;
  Value extra = Value::dict();
  extra.set("bos_token", Value::string("<s>"));
  extra.set("eos_token", Value::string("</s>"));
  switch (data[0] % 3) {
    case 0: {
      auto t = kiln::jinja::Template::parse(in);
      if (t.is_ok()) (void)t.value().render(kiln::jinja::chat_context(messages, true, extra), limits(), &now);
      break;
    }
    case 1: {
      const size_t nul = in.find('\0');
      if (nul == std::string::npos) return 0;
      auto t = kiln::jinja::Template::parse(in.substr(0, nul));
      auto conv = kiln::jinja::parse_json(in.substr(nul + 1));
      if (!t.is_ok() || !conv.is_ok()) return 0;
      Value msgs = conv.value();
      if (msgs.is_dict()) {
        const Value* m = msgs.find("messages");
        msgs = m ? *m : Value();
      }
      (void)t.value().render(kiln::jinja::chat_context(msgs, false, extra), limits(), &now);
      break;
    }
    default: {
      auto v = kiln::jinja::parse_json(in);
      if (!v.is_ok()) return 0;
      auto text = kiln::jinja::to_json(v.value());
      if (!text.is_ok() || !kiln::jinja::parse_json(text.value()).is_ok()) std::abort();  // a round trip must hold
    }
  }
  return 0;
}
