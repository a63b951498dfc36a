// Reads a checkpoint's tokenizer.json (HF tokenizers) and tokenizer_config.json into the
// TokenizerData kiln embeds in a plan. Supported: BPE models with a byte-level pre-tokenizer
// (the LLaMA-3 or GPT-2 split pattern) or SentencePiece-style "▁" handling with byte fallback.
// Anything else (another model type, an unknown split regex, normalizers that change text
// otherwise) is a CompileError naming the field, never a silently different tokenizer.
#pragma once
#include <string>

#include "runtime/tokenizer.h"

namespace kiln {

// False when the folder has no tokenizer.json. *chat_template receives tokenizer_config.json's
// template (or ""); the recognized format goes to data->chat.
bool read_hf_tokenizer(const std::string& model_dir, TokenizerData* data, std::string* chat_template);
// The same from the two files' texts (`path` names tokenizer.json in errors).
void parse_hf_tokenizer(const std::string& tokenizer_json, const std::string& config_json, const std::string& path,
                        TokenizerData* data, std::string* chat_template);

// A diffusers pipeline's CLIP tokenizer folder (vocab.json, merges.txt, tokenizer_config.json
// and/or special_tokens_map.json, as the hub ships them); false when vocab.json is absent.
bool read_clip_tokenizer(const std::string& dir, TokenizerData* data);

}  // namespace kiln
