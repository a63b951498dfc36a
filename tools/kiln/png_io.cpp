#include "tools/kiln/png_io.h"

#include <png.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "runtime/mapped_file.h"

namespace kiln {

void read_png_rgb8(const std::string& path, int64_t* w, int64_t* h, std::vector<uint8_t>* rgb) {
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  auto file = MappedFile::open(path);  // a regular file only: a FIFO is refused, never waited on
  if (!file.is_ok()) throw std::runtime_error(file.status().message());
  if (!png_image_begin_read_from_memory(&img, file.value()->data(), file.value()->size()))
    throw std::runtime_error(path + ": not a readable PNG (" + img.message + ")");
  if (img.width == 0 || img.height == 0 || img.width > 16384 || img.height > 16384) {
    png_image_free(&img);
    throw std::runtime_error(path + ": image size " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                             " is outside 1..16384");
  }
  img.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, rgba.data(), 0, nullptr))
    throw std::runtime_error(path + ": cannot decode the PNG (" + img.message + ")");
  *w = img.width;
  *h = img.height;
  rgb->resize(size_t(*w * *h * 3));
  for (int64_t i = 0; i < *w * *h; ++i)
    for (int c = 0; c < 3; ++c) (*rgb)[size_t(i * 3 + c)] = rgba[size_t(i * 4 + c)];
}

void write_png_rgb8(const std::string& path, int64_t w, int64_t h, const uint8_t* rgb) {
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  img.width = png_uint_32(w);
  img.height = png_uint_32(h);
  img.format = PNG_FORMAT_RGB;
  std::string target;  // (path, or the file its symbolic link names)
  if (Status st = output_file_path(path, &target); !st.is_ok()) throw std::runtime_error(st.message());
  std::string tmp;
  if (Status st = create_temp_beside(target, &tmp); !st.is_ok()) throw std::runtime_error(st.message());
  if (!png_image_write_to_file(&img, tmp.c_str(), 0, rgb, 0, nullptr)) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot write the PNG (" + img.message + ")");
  }
  if (rename_into_place(tmp, target) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename the finished PNG into place");
  }
}

}  // namespace kiln
