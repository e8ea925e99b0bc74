// ember/io.h - input files read the way ember's own loaders read them.
//
//   ember::Result<std::string> text = ember::read_file("prompt.txt");        // at most 4 GiB
//   if (!text.ok()) puts(text.status().message().c_str());   // "prompt.txt: is a directory"
//   if (ember::same_file("in.txt", "out.ember")) ...                          // would overwrite an input
//   auto ids = ember::read_token_file("val.bin");                             // nanoGPT's uint16 ids
//
// Every file ember reads (models, checkpoints, tokenizer files, datasets, text, token files, training
// state) is opened this way: a path that is not a regular file (a directory, a FIFO, a device, a socket)
// is refused by name before anything blocks on it, and a read stops at a byte limit instead of filling
// memory (files that report no size, such as those in /proc, are read up to the limit).
// Thread safety: plain functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ember/export.h"
#include "ember/status.h"

namespace ember {

constexpr uint64_t kMaxInputFileBytes = uint64_t{4} << 30;  // 4 GiB: the default limit of read_file()

// The whole file. Fails naming the path: kNotFound when it does not exist, kInvalidArgument when it is
// not a regular file ("is a directory", "is not a regular file (a FIFO)", ...), kInvalidFile when it
// holds more than `max_bytes`, kIoError when opening or reading fails.
EMBER_API Result<std::string> read_file(const std::string& path, uint64_t max_bytes = kMaxInputFileBytes);

// Token ids written as text: decimal ids separated by spaces, tabs, newlines or commas ("464 2068",
// "1,2,3"). Fails naming `name`, the byte offset and the character (anything else, or an id above
// 2^31 - 1). Never reads past `text`.
EMBER_API Result<std::vector<int32_t>> parse_token_ids(std::string_view text, const std::string& name);
// A token file: ids as text (parse_token_ids), or little-endian uint16 ids when the name ends in ".bin"
// (nanoGPT's train.bin / val.bin). Read with read_file()'s checks and limit.
EMBER_API Result<std::vector<int32_t>> read_token_file(const std::string& path, uint64_t max_bytes = kMaxInputFileBytes);

// True when both paths name one file: the same device and inode when both exist (through links, "..",
// hard links), the same absolute path with links resolved when neither exists yet. For tools that must
// not write an output over one of their inputs, or two outputs over each other.
EMBER_API bool same_file(const std::string& a, const std::string& b);

}  // namespace ember
