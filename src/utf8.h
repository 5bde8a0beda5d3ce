// Internal: UTF-8 well-formedness, shared by the log's JSON escaping and the config reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evfly::detail {

// The length of the well-formed UTF-8 sequence starting at text[i] (1 for ASCII), or 0 when
// the bytes there are not one: a stray continuation byte, a sequence cut short, an overlong
// form, a surrogate or a code point past U+10FFFF.
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t i) noexcept {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const unsigned char c = s[i];
    if (c < 0x80) return 1;
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1fu;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0fu;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (i + len > text.size()) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        if ((s[i + k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

}  // namespace evfly::detail
