// A read-only memory-mapped file (or a borrowed memory range with the same interface).
// Used by the plan loader and by the compiler's safetensors reader.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/status.h"

namespace kiln {

class MappedFile {
 public:
  // Maps the whole file read-only. An empty file maps to size 0 with a null data pointer.
  static Result<std::unique_ptr<MappedFile>> open(const std::string& path);
  // Wraps memory owned by the caller (not owned; must outlive this object).
  static std::unique_ptr<MappedFile> borrow(const void* data, size_t size, std::string name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  bool mapped() const { return mapped_; }  // a file mapping (not a borrowed range)
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::string path_;
};

// Where a finished output file (a plan, an image, a safetensors file) goes, written to a temporary
// file beside it and renamed over it: `path` itself when it is absent or a regular file, the file a
// symbolic link names (followed as open() follows it) when that is absent or a regular file (the
// link stays). Anything else there (a device such as /dev/null, a FIFO, a folder) is refused by
// name: renaming over it would replace it, and kiln writes regular files only.
Status output_file_path(const std::string& path, std::string* resolved);
// A new, empty regular file beside `target` (target + ".tmp.<pid>.<n>", created exclusively, never
// through a link, with the usual permissions less the umask) to write and then rename over target
// with rename_into_place.
Status create_temp_beside(const std::string& target, std::string* tmp);
// rename(tmp, target), the finished file first given the permissions of the file it replaces (if
// any). Returns rename's result (errno set on failure).
int rename_into_place(const std::string& tmp, const std::string& target);
// Unlinks the temporaries create_temp_beside made in this process that are still there (those
// renamed into place or removed are gone by then: their names, unique to the process, unlink
// nothing). Async-signal-safe: for a handler of SIGINT/SIGTERM, so an interrupted write leaves no
// X.tmp.<pid>.<n> behind.
void remove_temps_of_this_process();
// Makes SIGINT, SIGTERM and SIGHUP remove those temporaries, then end the process as the signal
// would have (a signal the process ignored stays ignored). For programs (the kiln CLI), not the library.
void remove_temps_on_signals();

}  // namespace kiln
