#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ember {
namespace {

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "is a directory";
  if (S_ISFIFO(m)) return "is not a regular file (a FIFO)";
  if (S_ISCHR(m)) return "is not a regular file (a character device)";
  if (S_ISBLK(m)) return "is not a regular file (a block device)";
  if (S_ISSOCK(m)) return "is not a regular file (a socket)";
  return "is not a regular file";
}

}  // namespace

Result<InputFile> InputFile::open(const std::string& path) {
  if (path.empty()) return invalid_argument("an empty path was given for a file to read");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return not_found(path + ": no such file");
    return io_error(path + ": cannot open: " + std::strerror(err));
  }
  InputFile f(fd, 0);
  struct stat st;
  if (fstat(fd, &st) != 0) return io_error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return invalid_argument(path + ": " + kind_of(st.st_mode));
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    return io_error(path + ": cannot clear O_NONBLOCK: " + std::strerror(errno));
  f.size_ = static_cast<uint64_t>(st.st_size);
  return f;
}

InputFile& InputFile::operator=(InputFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    size_ = o.size_;
    o.fd_ = -1;
  }
  return *this;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::string> InputFile::read_all(const std::string& path, uint64_t max_bytes) {
  auto too_large = [&] {
    return invalid_file(path + ": larger than the limit of " + std::to_string(max_bytes) + " bytes");
  };
  if (size_ > max_bytes) return too_large();
  std::string out;
  try {
    out.resize(static_cast<size_t>(size_ > 0 ? size_ : std::min<uint64_t>(4096, max_bytes)));
  } catch (const std::bad_alloc&) {
    return internal_error(path + ": out of memory reading " + std::to_string(size_) + " bytes");
  }
  size_t got = 0;
  for (;;) {
    if (got == out.size()) {
      // Grown past st_size (a file that reports no size, or one being appended to): keep going to the limit.
      if (got >= max_bytes) {
        char probe;
        const ssize_t n = ::read(fd_, &probe, 1);
        if (n == 0) break;
        if (n > 0) return too_large();
        if (errno == EINTR) continue;
        return io_error(path + ": read failed: " + std::strerror(errno));
      }
      const uint64_t next = std::min<uint64_t>(max_bytes, std::max<uint64_t>(2 * got, 4096));
      try {
        out.resize(static_cast<size_t>(next));
      } catch (const std::bad_alloc&) {
        return internal_error(path + ": out of memory reading " + std::to_string(next) + " bytes");
      }
    }
    const ssize_t n = ::read(fd_, &out[got], out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(path + ": read failed: " + std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

Result<std::string> read_file(const std::string& path, uint64_t max_bytes) {
  EMBER_ASSIGN_OR_RETURN(InputFile f, InputFile::open(path));
  return f.read_all(path, max_bytes);
}

Result<std::vector<int32_t>> parse_token_ids(std::string_view text, const std::string& name) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
      ++i;
      continue;
    }
    if (c < '0' || c > '9')
      return invalid_argument(name + ": unexpected character '" + std::string(1, c) + "' at offset " + std::to_string(i) +
                              " (token ids are decimal numbers separated by spaces or commas)");
    int64_t v = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i++] - '0');
      if (v > INT32_MAX) return invalid_argument(name + ": id too large at offset " + std::to_string(i));
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

Result<std::vector<int32_t>> read_token_file(const std::string& path, uint64_t max_bytes) {
  EMBER_ASSIGN_OR_RETURN(std::string bytes, read_file(path, max_bytes));
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".bin") == 0) {
    if (bytes.size() % 2 != 0)
      return invalid_file(path + ": " + std::to_string(bytes.size()) + " bytes is not a whole number of uint16 token ids");
    std::vector<int32_t> ids(bytes.size() / 2);
    for (size_t i = 0; i < ids.size(); ++i)
      ids[i] = static_cast<uint8_t>(bytes[2 * i]) | (static_cast<uint8_t>(bytes[2 * i + 1]) << 8);
    return ids;
  }
  return parse_token_ids(bytes, path);
}

namespace {

// A path whose last component may not exist yet, made absolute with links resolved: realpath() of the
// path, else of its directory plus the name. Unresolvable: the path as given.
std::string canonical_path(const std::string& p) {
  if (char* r = ::realpath(p.c_str(), nullptr)) {
    std::string s(r);
    std::free(r);
    return s;
  }
  const size_t slash = p.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  const std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
  if (char* r = ::realpath(dir.c_str(), nullptr)) {
    std::string s(r);
    std::free(r);
    return s + (s == "/" ? "" : "/") + name;
  }
  return p;
}

}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  const bool ea = ::stat(a.c_str(), &sa) == 0, eb = ::stat(b.c_str(), &sb) == 0;
  if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (ea != eb) return false;
  return canonical_path(a) == canonical_path(b);
}

Status write_file_replacing(const std::string& path, const void* bytes, size_t size) {
  if (path.empty()) return invalid_argument("an empty path to write");
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error(path + ": cannot create " + tmp + ": " + std::strerror(errno));
  const auto* p = static_cast<const char*>(bytes);
  size_t done = 0;
  int err = 0;
  while (done < size && err == 0) {
    const ssize_t w = ::write(fd, p + done, size - done);
    if (w > 0) done += static_cast<size_t>(w);
    else if (w < 0 && errno != EINTR) err = errno;
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return io_error(path + ": writing failed: " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace ember
