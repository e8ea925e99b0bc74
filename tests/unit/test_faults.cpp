// Faults while writing: every file ember writes goes through a temporary, is fsync'ed and renamed, so a
// full disk or a killed process leaves the previous file intact. The CLI side (ember-quantize under
// `ulimit -f`) is in tests/cli/test_cli.sh.
#include <doctest/doctest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "convert/atomic_file.h"
#include "ember/convert.h"
#include "ember/model.h"
#include "model_specs.h"
#include "test_paths.h"

namespace {

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_plain(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
  REQUIRE(f.good());
}

// Files in the directory of `path` whose name starts with its basename + ".tmp".
std::vector<std::string> temporaries(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = path.substr(0, slash), prefix = path.substr(slash + 1) + ".tmp";
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d))
      if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) out.push_back(dir + "/" + e->d_name);
    closedir(d);
  }
  return out;
}

// A float model of about 1.3 MB.
ember::ModelSpec spec_of_size() {
  ember::ModelConfig c;
  c.n_vocab = 256;
  c.n_ctx = 64;
  c.n_embd = 128;
  c.n_head = 4;
  c.n_layer = 2;
  c.n_ff = 512;
  return ember_test::random_spec(c, 9, 0.1f);
}

// Limits the size of files this process writes (a full disk, as `ulimit -f` does) while alive; SIGXFSZ
// is ignored so that write() fails with EFBIG instead of killing the process.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old_) == 0);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit l = old_;
    l.rlim_cur = bytes;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &l) == 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

}  // namespace

TEST_CASE("faults: a full disk leaves the previous model file intact, with a clear error and no temporary") {
  const std::string p = ember_test::temp_dir() + "/ember_faults_full.ember";
  write_plain(p, "the previous model");
  const ember::ModelSpec spec = spec_of_size();
  ember::Status st;
  {
    FileSizeLimit limit(256 * 1024);
    st = ember::write_model_file(spec, p);
  }
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == ember::StatusCode::kIoError);
  CHECK_MESSAGE(st.message().find("ember_faults_full.ember: write failed (File too large); the previous file, if any, is unchanged") !=
                    std::string::npos,
                st.message());
  CHECK(read_all(p) == "the previous model");
  CHECK(temporaries(p).empty());
  // Without the limit the same call succeeds and the new file loads.
  REQUIRE(ember::write_model_file(spec, p).ok());
  CHECK(ember::Model::load(p).ok());
  CHECK(temporaries(p).empty());
  std::remove(p.c_str());
}

TEST_CASE("faults: write_file_atomic on a full disk keeps the old bytes") {
  const std::string p = ember_test::temp_dir() + "/ember_faults_atomic.bin";
  write_plain(p, "old");
  const std::string big(1 << 20, 'x');
  ember::Status st;
  {
    FileSizeLimit limit(4096);
    st = ember::write_file_atomic(p, big.data(), big.size());
  }
  CHECK_FALSE(st.ok());
  CHECK(st.message().find("the previous file, if any, is unchanged") != std::string::npos);
  CHECK(read_all(p) == "old");
  CHECK(temporaries(p).empty());
  REQUIRE(ember::write_file_atomic(p, big.data(), big.size()).ok());
  CHECK(read_all(p) == big);
  std::remove(p.c_str());
}

TEST_CASE("faults: a writer killed in the middle of writing leaves the previous file intact") {
  const std::string p = ember_test::temp_dir() + "/ember_faults_kill.bin";
  const std::string old = "the previous contents";
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    write_plain(p, old);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Writes forever through AtomicFile (as write_model_file does) until killed.
      ember::AtomicFile f;
      if (!f.open(p).ok()) _exit(2);
      const std::string chunk(1 << 16, 'n');
      for (;;)
        if (!f.write(chunk.data(), chunk.size()).ok()) _exit(3);
    }
    // Kill it once its temporary holds some data (round 0: as soon as it exists).
    const std::string tmp_path = p + ".tmp." + std::to_string(child);
    struct stat st {};
    for (int i = 0; i < 2000; ++i) {
      if (stat(tmp_path.c_str(), &st) == 0 && st.st_size >= (round == 0 ? 0 : (round << 20))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(stat(tmp_path.c_str(), &st) == 0);
    kill(child, SIGKILL);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    CHECK(read_all(p) == old);
    // The temporary of a killed writer stays behind under its pid-stamped name, never at `p`.
    for (const std::string& t : temporaries(p)) std::remove(t.c_str());
  }
  std::remove(p.c_str());
}

TEST_CASE("remove_stale_temporaries: a dead writer's temporary goes, a live writer's and other names stay") {
  const std::string D = ember_test::temp_dir() + "/ember_stale_" + std::to_string(getpid());
  REQUIRE(system(("rm -rf " + D + " && mkdir -p " + D).c_str()) == 0);
  const pid_t child = fork();  // a pid that has just ended
  REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  const std::string path = D + "/model.ember";
  for (const std::string& name : {path + ".tmp." + std::to_string(child), path + ".tmp." + std::to_string(getpid()),
                                  path + ".tmp.12x", path + ".tmpx." + std::to_string(child), D + "/other.tmp." + std::to_string(child)})
    std::ofstream(name) << "x";
  CHECK(ember::remove_stale_temporaries(path) == 1);
  struct stat st;
  CHECK(stat((path + ".tmp." + std::to_string(child)).c_str(), &st) != 0);
  CHECK(stat((path + ".tmp." + std::to_string(getpid())).c_str(), &st) == 0);  // this process is alive
  CHECK(stat((path + ".tmp.12x").c_str(), &st) == 0);
  CHECK(stat((D + "/other.tmp." + std::to_string(child)).c_str(), &st) == 0);  // another file's
  CHECK(ember::remove_stale_temporaries(D + "/missing-dir/x.ember") == 0);
  REQUIRE(system(("rm -rf " + D).c_str()) == 0);
}
