// A C face for OpenJPH's C++ API (Debian libopenjph-dev): lossless HTJ2K of one component.
#include "cairn_htj2k.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include <openjph/ojph_arch.h>
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_message.h>
#include <openjph/ojph_params.h>

namespace {

// OpenJPH reports errors through a global handler that prints and throws; this one only throws,
// so a damaged codestream never writes to the node's stderr. Warnings and notes are dropped.
struct SilentError : ojph::message_error {
    void operator()(int, const char *, int, const char *, ...) override { throw std::runtime_error("openjph"); }
};
struct SilentWarning : ojph::message_warning {
    void operator()(int, const char *, int, const char *, ...) override {}
};
struct SilentInfo : ojph::message_info {
    void operator()(int, const char *, int, const char *, ...) override {}
};

void installHandlers() {
    static const bool installed = [] {
        static SilentError error;
        static SilentWarning warning;
        static SilentInfo info;
        ojph::configure_error(&error);
        ojph::configure_warning(&warning);
        ojph::configure_info(&info);
        // Some of OpenJPH's messages bypass the handlers and print to these streams.
        if (FILE *sink = std::fopen("/dev/null", "w")) {
            ojph::set_error_stream(sink);
            ojph::set_warning_stream(sink);
            ojph::set_info_stream(sink);
        }
        return true;
    }();
    (void)installed;
}

inline uint32_t load(const uint8_t *samples, size_t index, uint32_t bytes) {
    return bytes == 2 ? uint32_t(samples[2 * index]) | uint32_t(samples[2 * index + 1]) << 8 : samples[index];
}

}  // namespace

extern "C" size_t cairn_htj2k_encode(const uint8_t *samples, uint32_t width, uint32_t height, uint32_t bytes_per_sample,
                                     uint8_t **out) {
    installHandlers();
    *out = nullptr;
    if (width == 0 || height == 0 || (bytes_per_sample != 1 && bytes_per_sample != 2)) return 0;
    try {
        ojph::codestream codestream;
        ojph::param_siz siz = codestream.access_siz();
        siz.set_image_extent(ojph::point(width, height));
        siz.set_num_components(1);
        siz.set_component(0, ojph::point(1, 1), 8 * bytes_per_sample, false);
        siz.set_image_offset(ojph::point(0, 0));
        siz.set_tile_size(ojph::size(width, height));
        siz.set_tile_offset(ojph::point(0, 0));
        ojph::param_cod cod = codestream.access_cod();
        cod.set_num_decomposition(5);
        cod.set_block_dims(64, 64);
        cod.set_progression_order("RPCL");
        cod.set_color_transform(false);
        cod.set_reversible(true);
        codestream.set_planar(false);
        ojph::mem_outfile file;
        file.open();
        codestream.write_headers(&file);
        ojph::ui32 component = 0;
        ojph::line_buf *line = codestream.exchange(nullptr, component);
        for (uint32_t row = 0; row < height; ++row) {
            const size_t base = size_t(row) * width;
            for (uint32_t x = 0; x < width; ++x) line->i32[x] = ojph::si32(load(samples, base + x, bytes_per_sample));
            line = codestream.exchange(line, component);
        }
        codestream.flush();
        // Copied out before close(), which closes (and frees) the memory file too.
        const size_t size = size_t(file.tell());
        uint8_t *buffer = static_cast<uint8_t *>(std::malloc(size > 0 ? size : 1));
        if (buffer != nullptr) std::memcpy(buffer, file.get_data(), size);
        codestream.close();
        if (buffer == nullptr || size == 0) {
            std::free(buffer);
            return 0;
        }
        *out = buffer;
        return size;
    } catch (...) {
        return 0;
    }
}

extern "C" void cairn_htj2k_free(uint8_t *buffer) { std::free(buffer); }

extern "C" int cairn_htj2k_decode(const uint8_t *data, size_t size, uint32_t width, uint32_t height,
                                  uint32_t bytes_per_sample, uint8_t *samples) {
    installHandlers();
    if (width == 0 || height == 0 || (bytes_per_sample != 1 && bytes_per_sample != 2)) return -1;
    try {
        ojph::mem_infile file;
        file.open(data, size);
        ojph::codestream codestream;
        codestream.read_headers(&file);
        ojph::param_siz siz = codestream.access_siz();
        const ojph::point extent = siz.get_image_extent();
        const ojph::point offset = siz.get_image_offset();
        if (extent.x != width || extent.y != height || offset.x != 0 || offset.y != 0 || siz.get_num_components() != 1
            || siz.get_bit_depth(0) != 8 * bytes_per_sample || siz.is_signed(0)) {
            codestream.close();
            return -1;
        }
        codestream.create();
        const ojph::si32 maximum = (1 << (8 * bytes_per_sample)) - 1;
        for (uint32_t row = 0; row < height; ++row) {
            ojph::ui32 component = 0;
            ojph::line_buf *line = codestream.pull(component);
            if (line == nullptr || component != 0 || line->size < width) {
                codestream.close();
                return -1;
            }
            const size_t base = size_t(row) * width;
            for (uint32_t x = 0; x < width; ++x) {
                ojph::si32 value = line->i32[x];
                value = value < 0 ? 0 : (value > maximum ? maximum : value);
                if (bytes_per_sample == 2) {
                    samples[2 * (base + x)] = uint8_t(value);
                    samples[2 * (base + x) + 1] = uint8_t(value >> 8);
                } else {
                    samples[base + x] = uint8_t(value);
                }
            }
        }
        codestream.close();
        return 0;
    } catch (...) {
        return -1;
    }
}
