#include "runtime/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace kiln {

namespace {

const char* file_kind(mode_t m) {
  return S_ISDIR(m)                 ? "a folder"
         : S_ISFIFO(m)              ? "a FIFO or pipe"
         : S_ISCHR(m) || S_ISBLK(m) ? "a device"
         : S_ISSOCK(m)              ? "a socket"
                                    : "not a regular file";
}

}  // namespace

Status output_file_path(const std::string& path, std::string* resolved) {
  if (path.empty()) return invalid_argument("the output path is empty");
  std::string target = path;
  struct stat st;
  auto refuse = [&](mode_t m) {
    return io_error("'" + path + "'" + (target != path ? " links to '" + target + "', which" : "") + " is " +
                    file_kind(m) +
                    ": kiln writes its output to a regular file (replacing it), never into or over anything else");
  };
  for (int hops = 0;; ++hops) {  // through symbolic links, as open() would (40: Linux's own limit)
    if (::lstat(target.c_str(), &st) != 0) {
      // Absent, or a /proc link's target ("pipe:[…]", for /dev/stdout) that only stat() reaches.
      if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
        target = path;  // (not a path to show)
        return refuse(st.st_mode);
      }
      *resolved = target;  // (creating the file will say why, if it cannot be)
      return Status::ok();
    }
    if (!S_ISLNK(st.st_mode)) break;
    if (hops == 40) return io_error("'" + path + "': too many levels of symbolic links");
    std::string to(4096, '\0');
    const ssize_t n = ::readlink(target.c_str(), &to[0], to.size());
    if (n <= 0 || size_t(n) >= to.size()) return io_error("cannot read the symbolic link '" + target + "'");
    to.resize(size_t(n));
    const size_t slash = target.rfind('/');
    target = to[0] == '/' || slash == std::string::npos ? to : target.substr(0, slash + 1) + to;
  }
  if (!S_ISREG(st.st_mode)) return refuse(st.st_mode);
  *resolved = target;
  return Status::ok();
}

namespace {

// The temporaries' names, for remove_temps_of_this_process in a signal handler: fixed storage (no
// allocation there), each slot published by its flag. A process makes a handful of outputs; past
// kTempSlots the oldest slots are reused (their files long since renamed).
constexpr size_t kTempSlots = 64, kTempNameMax = 4096;
char temp_names[kTempSlots][kTempNameMax];
std::atomic<bool> temp_listed[kTempSlots];
std::atomic<unsigned> temp_next{0};

void list_temp(const std::string& name) {
  if (name.size() >= kTempNameMax) return;  // (open() would have refused it: PATH_MAX)
  const unsigned i = temp_next.fetch_add(1) % kTempSlots;
  temp_listed[i].store(false, std::memory_order_release);
  std::memcpy(temp_names[i], name.c_str(), name.size() + 1);
  temp_listed[i].store(true, std::memory_order_release);
}

}  // namespace

void remove_temps_of_this_process() {
  for (size_t i = 0; i < kTempSlots; ++i)
    if (temp_listed[i].load(std::memory_order_acquire)) ::unlink(temp_names[i]);
}

namespace {

void remove_temps_and_end(int sig) {
  remove_temps_of_this_process();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void remove_temps_on_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = remove_temps_and_end;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

Status create_temp_beside(const std::string& target, std::string* tmp) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string suffix = ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
    // A name near the file system's limit (255 bytes) has no room for the suffix: a hidden name
    // in the same folder then.
    const size_t slash = target.rfind('/');
    const size_t base_len = target.size() - (slash == std::string::npos ? 0 : slash + 1);
    const std::string name = base_len + suffix.size() <= 255
                                 ? target + suffix
                                 : target.substr(0, slash == std::string::npos ? 0 : slash + 1) + ".kiln" + suffix;
    const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) {
      ::close(fd);
      list_temp(name);
      *tmp = name;
      return Status::ok();
    }
    if (errno != EEXIST) return io_error(target + ": cannot open for writing: " + std::strerror(errno));
  }
  return io_error(target + ": cannot create a temporary file beside it");
}

int rename_into_place(const std::string& tmp, const std::string& target) {
  // A file it replaces keeps its permissions (a plan made private stays private; a read-only one
  // stays read-only): given to the finished file, which was written with the usual ones.
  struct stat old;
  if (::stat(target.c_str(), &old) == 0 && S_ISREG(old.st_mode)) (void)::chmod(tmp.c_str(), old.st_mode & 0777);
  return ::rename(tmp.c_str(), target.c_str());
}

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  // O_NONBLOCK: a FIFO or a device must not block open() before fstat can refuse it (the flag
  // means nothing for the regular files that pass).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return io_error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return io_error("cannot stat '" + path + "': " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error("'" + path + "' is not a regular file");
  }
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return io_error("cannot map '" + path + "': " + std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  }
  ::close(fd);
  return f;
}

std::unique_ptr<MappedFile> MappedFile::borrow(const void* data, size_t size, std::string name) {
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->data_ = static_cast<const uint8_t*>(data);
  f->size_ = size;
  f->path_ = std::move(name);
  return f;
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace kiln
