// PNG files for the CLI and the tests (libpng's simplified API): read any PNG as 8-bit RGB
// (palette and gray expanded, alpha dropped as PIL's convert("RGB") drops it) and write 8-bit
// RGB atomically (a temporary file, then rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

// Throws std::runtime_error naming the file on any failure.
void read_png_rgb8(const std::string& path, int64_t* w, int64_t* h, std::vector<uint8_t>* rgb);
void write_png_rgb8(const std::string& path, int64_t w, int64_t h, const uint8_t* rgb);

}  // namespace kiln
