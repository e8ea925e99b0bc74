// AtomicFile and the registry of temporaries that a signal handler removes.
#include "convert/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ember/convert.h"

namespace ember {
namespace {

// The temporaries being written, for the signal handler: fixed slots (no allocation, no lock), each a
// path and a state (0 free, 1 being filled or emptied, 2 holds a path). More writers than slots at once
// go unregistered: their temporary is then only removed by the writer itself.
constexpr int kSlots = 16;
constexpr size_t kMaxPath = 4096;
struct Slot {
  std::atomic<int> state{0};
  char path[kMaxPath];
};
Slot g_slots[kSlots];
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

int register_temporary(const std::string& path) {
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (g_slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
      g_slots[i].state.store(2, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void unregister_temporary(int slot) {
  if (slot < 0) return;
  g_slots[slot].state.store(0, std::memory_order_release);
}

char g_prog[256];

void write_str(const char* s) {
  ssize_t n = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)n;
}

// Async-signal-safe: unlink, write, signal, raise.
extern "C" void on_fatal_signal(int sig) {
  int removed = 0;
  for (Slot& s : g_slots)
    if (s.state.load(std::memory_order_acquire) == 2 && ::unlink(s.path) == 0) ++removed;
  if (g_prog[0]) {
    write_str(g_prog);
    write_str(sig == SIGINT ? ": interrupted (SIGINT)" : sig == SIGTERM ? ": terminated (SIGTERM)" : ": hangup (SIGHUP)");
    write_str(removed ? "; removed the partly written output, the previous file is unchanged\n" : "\n");
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void remove_temporaries_on_signals(const char* prog) {
  std::strncpy(g_prog, prog ? prog : "", sizeof g_prog - 1);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    // A signal the caller's parent ignored (nohup, a shell's background job) stays ignored.
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
  }
  // Past the file size limit (ulimit -f), write() then fails with EFBIG instead of the process being
  // killed: AtomicFile removes its temporary and reports "File too large" like a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() {
  if (f_) {
    std::fclose(f_);
    f_ = nullptr;
    std::remove(tmp_.c_str());
  }
  unregister_temporary(slot_);
  slot_ = -1;
}

Status AtomicFile::open(const std::string& path) {
  discard();
  path_ = path;
  tmp_ = path + ".tmp." + std::to_string(getpid());
  slot_ = register_temporary(tmp_);  // before the file exists: a signal may come at any moment
  f_ = std::fopen(tmp_.c_str(), "wbe");  // e: O_CLOEXEC, a child process never inherits it
  if (!f_) {
    const std::string why = std::strerror(errno);
    discard();
    return io_error(path + ": cannot create its temporary " + tmp_ + ": " + why);
  }
  pos_ = 0;
  return Status::Ok();
}

Status AtomicFile::write(const void* data, size_t size) {
  if (!f_) return internal_error(path_ + ": write to a file that is not open");
  if (size && std::fwrite(data, 1, size, f_) != size) {
    std::string why = std::strerror(errno);
    discard();
    return io_error(path_ + ": write failed (" + why + "); the previous file, if any, is unchanged");
  }
  pos_ += size;
  return Status::Ok();
}

Status AtomicFile::write_zeros(size_t n) {
  static const char zeros[64] = {};
  while (n > 0) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    EMBER_RETURN_IF_ERROR(write(zeros, k));
    n -= k;
  }
  return Status::Ok();
}

Status AtomicFile::commit() {
  if (!f_) return internal_error(path_ + ": commit of a file that is not open");
  bool ok = std::fflush(f_) == 0 && fsync(fileno(f_)) == 0;
  std::string why = ok ? "" : std::strerror(errno);
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    if (why.empty()) why = std::strerror(errno);
    std::remove(tmp_.c_str());
    discard();
    return io_error(path_ + ": could not finish writing (" + why + "); the previous file, if any, is unchanged");
  }
  discard();  // the temporary is now `path`: the signal handler must not remove it
  // The rename is durable once the directory is on disk too (else a power cut can bring back the old
  // name, or neither). Best effort: some file systems refuse fsync on a directory.
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

size_t remove_stale_temporaries(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
  DIR* d = opendir(dir.c_str());
  if (!d) return 0;
  std::vector<std::string> stale;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    if (kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  closedir(d);
  size_t removed = 0;
  for (const std::string& name : stale) removed += std::remove((slash == std::string::npos ? name : dir + name).c_str()) == 0;
  return removed;
}

Status write_file_atomic(const std::string& path, const void* bytes, size_t size) {
  AtomicFile f;
  EMBER_RETURN_IF_ERROR(f.open(path));
  EMBER_RETURN_IF_ERROR(f.write(bytes, size));
  return f.commit();
}

}  // namespace ember
