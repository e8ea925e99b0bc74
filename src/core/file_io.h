// Opening input files without blocking: the one place ember opens a file for reading.
#pragma once

#include <cstdint>
#include <string>

#include "ember/io.h"
#include "ember/status.h"

namespace ember {

// An open regular file (fd, O_RDONLY | O_CLOEXEC) and its size; closes on destruction.
class InputFile {
 public:
  // Opens with O_NONBLOCK (a FIFO without a writer does not block the open), checks that the path is a
  // regular file, then clears O_NONBLOCK. Errors as ember::read_file() documents.
  static Result<InputFile> open(const std::string& path);
  InputFile(InputFile&& o) noexcept : fd_(o.fd_), size_(o.size_) { o.fd_ = -1; }
  InputFile& operator=(InputFile&& o) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // st_size at open (0 for /proc files, which still have data)
  // Reads to the end (never more than max_bytes; more is a kInvalidFile error naming `path`).
  Result<std::string> read_all(const std::string& path, uint64_t max_bytes);

 private:
  InputFile(int fd, uint64_t size) : fd_(fd), size_(size) {}
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Writes `bytes` to PATH.tmp.<pid>, flushes it to the disk and renames it over `path`, so a reader sees
// the old file or the whole new one (libember's only writer: session states; the host library has its own,
// AtomicFile, with signal handling). Fails naming the path; leaves no temporary behind.
Status write_file_replacing(const std::string& path, const void* bytes, size_t size);

}  // namespace ember
