// Reads a checkpoint's tokenizer.json (HF tokenizers) and tokenizer_config.json into the
// TokenizerData kiln embeds in a plan. Supported: BPE models with a byte-level pre-tokenizer
// (the LLaMA-3 or GPT-2 split pattern) or SentencePiece-style "▁" handling with byte fallback.
// Anything else (another model type, an unknown split regex, normalizers that change text
// otherwise) is a CompileError naming the field, never a silently different tokenizer.
#pragma once
#include <string>

#include "runtime/tokenizer.h"

namespace kiln {

// False when the folder has no tokenizer.json. The chat template (chat_template.jinja where the
// folder has one, as transformers prefers it, else tokenizer_config.json's) is parsed by the
// runtime's Jinja interpreter and kept with the special tokens it sees (data->chat_template,
// chat_vars); a template outside the interpreter's subset is a CompileError naming the
// construct. *notes (may be null) receives remarks for the compile summary.
bool read_hf_tokenizer(const std::string& model_dir, TokenizerData* data, std::string* notes,
                       bool with_chat_template = true);
// The notes a plan without a tokenizer gets about the folder's generation config: the settings
// transformers' generate would apply, its stop tokens included, none of which such a plan keeps.
std::string generation_notes_without_tokenizer(const std::string& dir);
// Files beside tokenizer.json that transformers reads for the chat template (null: absent).
struct ChatTemplateFiles {
  const std::string* jinja = nullptr;               // chat_template.jinja (then tokenizer_config's is unused)
  const std::string* tool_use_jinja = nullptr;      // additional_chat_templates/tool_use.jinja
  const std::string* special_tokens_map = nullptr;  // special_tokens_map.json (where the config lacks a token)
};
// The same from the files' texts (`path` names tokenizer.json in errors).
void parse_hf_tokenizer(const std::string& tokenizer_json, const std::string& config_json, const std::string& path,
                        TokenizerData* data, std::string* notes, const ChatTemplateFiles& files = {},
                        bool with_chat_template = true);

// A diffusers pipeline's CLIP tokenizer folder (vocab.json, merges.txt, tokenizer_config.json
// and/or special_tokens_map.json, as the hub ships them); false when vocab.json is absent.
bool read_clip_tokenizer(const std::string& dir, TokenizerData* data);

}  // namespace kiln
