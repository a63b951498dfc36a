#include "runtime/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln {

Status output_file_path(const std::string& path, std::string* resolved) {
  if (path.empty()) return invalid_argument("the output path is empty");
  std::string target = path;
  struct stat st;
  for (int hops = 0;; ++hops) {               // through symbolic links, as open() would (40: Linux's own limit)
    if (::lstat(target.c_str(), &st) != 0) {  // absent (or unreachable: creating the file will say why)
      *resolved = target;
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
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)                          ? "a folder"
                       : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                       : S_ISSOCK(st.st_mode)                       ? "a socket"
                                                                    : "not a regular file";
    return io_error("'" + path + "'" + (target != path ? " links to '" + target + "', which" : "") + " is " + kind +
                    ": kiln writes its output to a regular file (replacing it), never into or over anything else");
  }
  *resolved = target;
  return Status::ok();
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
