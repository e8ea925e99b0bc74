// Writes a file atomically: bytes go to "<path>.tmp.<pid>", which is flushed, fsync'ed and renamed over
// `path` by commit(), then the directory is fsync'ed. Destroyed without commit(), it removes the
// temporary: a failure (full disk, kill) never leaves a half-written file at `path`, and an older file
// there stays intact (a killed process cannot remove its temporary; the pid in its name tells whose it
// was). Error messages name `path` and say that the previous file is unchanged.
// While open, the temporary's name is registered for remove_temporaries_on_signals() (ember/convert.h).
// Not thread-safe; two writers of the same path must be in different processes.
#pragma once

#include <cstdio>
#include <string>

#include "ember/status.h"

namespace ember {

class AtomicFile {
 public:
  AtomicFile() = default;
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  Status open(const std::string& path);
  Status write(const void* data, size_t size);
  Status write_zeros(size_t n);
  uint64_t position() const { return pos_; }
  Status commit();

 private:
  void discard();
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  int slot_ = -1;  // in the registry that remove_temporaries_on_signals() cleans
  uint64_t pos_ = 0;
};

}  // namespace ember
