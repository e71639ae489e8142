#include "engine/npy.hpp"

#include <fmt/format.h>

#include <bit>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "common/atomic_file.hpp"
#include "common/error.hpp"

namespace provnn::engine {
namespace {

static_assert(std::endian::native == std::endian::little, "the .npy reader assumes a little-endian host");

constexpr std::string_view magic = "\x93NUMPY";

// The header is a Python dict literal, e.g. {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
// This is a tiny parser of exactly that subset: string, bool and tuple-of-int values.
class header_parser {
 public:
  header_parser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  void parse(std::string& descr, bool& fortran, shape_t& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip();
    expect('{');
    for (;;) {
      skip();
      if (peek() == '}') break;
      const std::string key = string_literal();
      skip();
      expect(':');
      skip();
      if (key == "descr") {
        descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        fail(fmt::format("unknown header key '{}'", key));
      }
      skip();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip();
      if (peek() != '}') fail("expected ',' or '}'");
    }
    if (!have_descr || !have_fortran || !have_shape) fail("the header lacks 'descr', 'fortran_order' or 'shape'");
  }

 private:
  std::string_view s_;
  std::string_view source_;
  std::size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw parse_error(fmt::format("{}: malformed .npy header at character {}: {}", source_, pos_, what));
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(fmt::format("expected '{}'", c));
    ++pos_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++pos_;
    const std::size_t end = s_.find(q, pos_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string r(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return r;
  }
  bool boolean() {
    if (s_.substr(pos_, 4) == "True") return pos_ += 4, true;
    if (s_.substr(pos_, 5) == "False") return pos_ += 5, false;
    fail("expected True or False");
  }
  shape_t tuple() {
    expect('(');
    shape_t r;
    for (;;) {
      skip();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer in the shape");
      std::size_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const auto d = static_cast<std::size_t>(peek() - '0');
        if (v > (std::numeric_limits<std::size_t>::max() - d) / 10) fail("shape value too large");
        v = v * 10 + d;
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literals
      r.push_back(v);
      skip();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip();
      if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
    ++pos_;
    return r;
  }
};

template <class T>
void convert(const char* p, std::size_t n, std::vector<double>& out) {
  for (std::size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
}

std::string shape_str(const shape_t& s) {
  if (s.size() == 1) return fmt::format("({},)", s[0]);
  return fmt::format("({})", fmt::join(s, ", "));
}

shape_t squeeze(const shape_t& s) {
  shape_t r;
  for (auto d : s)
    if (d != 1) r.push_back(d);
  return r;
}

}  // namespace

npy_array parse_npy(std::string_view bytes, std::string_view source) {
  auto fail = [&](const std::string& what) {
    throw parse_error(fmt::format("{}: not a valid .npy file: {}", source, what));
  };
  if (bytes.size() < 10 || bytes.substr(0, 6) != magic) fail("it does not start with the NumPy magic string");
  const auto major = static_cast<unsigned char>(bytes[6]), minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail(fmt::format("format version {}.{} (provnn reads 1.0, 2.0 and 3.0)", major, minor));
  std::size_t header_len, header_start;
  if (major == 1) {
    header_len =
        static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else {
    if (bytes.size() < 12) fail("the file ends inside the header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
    header_start = 12;
  }
  if (bytes.size() - header_start < header_len)
    fail(fmt::format("the header announces {} bytes but the file ends after {}", header_len,
                     bytes.size() - header_start));
  std::string descr;
  bool fortran = false;
  npy_array a;
  header_parser(bytes.substr(header_start, header_len), source).parse(descr, fortran, a.shape);

  if (fortran)
    throw unsupported_error(
        fmt::format("{}: the array is in Fortran order; provnn reads C order (save it with "
                    "numpy.save(path, numpy.ascontiguousarray(a)))",
                    source));
  if (descr.size() < 2) fail(fmt::format("dtype '{}'", descr));
  const char order = descr[0];
  const std::string type = descr.substr(1);
  std::size_t item;
  if (type == "f4" || type == "i4")
    item = 4;
  else if (type == "f8" || type == "i8")
    item = 8;
  else if (type == "u1")
    item = 1;
  else
    throw unsupported_error(
        fmt::format("{}: dtype '{}' is not supported; provnn reads float32, float64, uint8, int32 "
                    "and int64 (convert with a.astype(numpy.float64))",
                    source, descr));
  if (order == '>' && item > 1)
    throw unsupported_error(
        fmt::format("{}: dtype '{}' is big-endian; provnn reads little-endian arrays (convert with "
                    "a.astype('<{}'))",
                    source, descr, type));
  if (order != '<' && order != '|' && order != '=' && !(order == '>' && item == 1))
    fail(fmt::format("dtype '{}' has an unknown byte-order mark", descr));
  if (order == '|' && item > 1)
    fail(fmt::format("dtype '{}': '|' (not applicable) is only valid for one-byte types", descr));

  std::size_t n = 1;
  for (auto d : a.shape) {
    if (d != 0 && n > std::numeric_limits<std::size_t>::max() / item / d)
      fail(fmt::format("shape {} is too large", shape_str(a.shape)));
    n *= d;
  }
  const std::size_t data_bytes = bytes.size() - header_start - header_len;
  if (data_bytes != n * item)
    fail(fmt::format("shape {} of '{}' needs {} data bytes, but the file holds {} ({})", shape_str(a.shape), descr,
                     n * item, data_bytes, data_bytes < n * item ? "truncated" : "trailing bytes"));
  const char* p = bytes.data() + header_start + header_len;
  a.data.resize(n);
  if (type == "f4")
    convert<float>(p, n, a.data);
  else if (type == "f8")
    convert<double>(p, n, a.data);
  else if (type == "i4")
    convert<std::int32_t>(p, n, a.data);
  else if (type == "i8")
    convert<std::int64_t>(p, n, a.data);
  else
    convert<std::uint8_t>(p, n, a.data);
  return a;
}

npy_array read_npy(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw io_error(fmt::format("{}: is a directory, not a .npy file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(fmt::format("{}: cannot open the .npy file", path.string()));
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > max_npy_bytes)
    throw limit_error(
        fmt::format("{}: the file has {} bytes, more than max_npy_bytes = {}", path.string(), size, max_npy_bytes));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw io_error(fmt::format("{}: cannot read the .npy file", path.string()));
  return parse_npy(bytes, path.string());
}

std::string npy_bytes(const shape_t& shape, std::span<const double> data) {
  std::string dict = fmt::format("{{'descr': '<f8', 'fortran_order': False, 'shape': {}, }}", shape_str(shape));
  // NumPy pads the header with spaces and a final newline so the data starts 64-byte aligned.
  const bool v1 = dict.size() + 1 + 10 <= 65535;
  const std::size_t prefix = v1 ? 10 : 12;
  const std::size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::string out(magic);
  out.push_back(static_cast<char>(v1 ? 1 : 2));
  out.push_back('\0');
  const std::size_t len = dict.size();
  for (std::size_t i = 0; i < (v1 ? 2u : 4u); ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += dict;
  const std::size_t start = out.size();
  out.resize(start + data.size() * 8);
  if (!data.empty()) std::memcpy(out.data() + start, data.data(), data.size() * 8);
  return out;
}

void write_npy(const std::filesystem::path& path, const shape_t& shape, std::span<const double> data) {
  if (data.size() != element_count(shape))
    throw error(fmt::format("{}: cannot write {} values as an array of shape {}", path.string(), data.size(),
                            shape_str(shape)));
  write_file_atomically(path, npy_bytes(shape, data));
}

std::vector<double> select_sample(const npy_array& a, const shape_t& input_shape, std::optional<std::size_t> index,
                                  std::string_view source) {
  const std::size_t per_sample = element_count(input_shape);
  auto single = [&]() -> std::vector<double> {
    if (index && *index != 0)
      throw error(
          fmt::format("{}: --index {} asks for a sample, but the array of shape {} holds a single sample of the "
                      "network's input shape {}",
                      source, *index, shape_str(a.shape), shape_str(input_shape)));
    return a.data;
  };
  auto batch = [&]() -> std::vector<double> {
    const std::size_t n = a.shape[0], i = index.value_or(0);
    if (i >= n)
      throw error(fmt::format("{}: index {} is out of range: the array of shape {} holds {} samples (0 to {})", source,
                              i, shape_str(a.shape), n, n - 1));
    return {a.data.begin() + static_cast<std::ptrdiff_t>(i * per_sample),
            a.data.begin() + static_cast<std::ptrdiff_t>((i + 1) * per_sample)};
  };
  const shape_t tail = a.shape.empty() ? shape_t{} : shape_t(a.shape.begin() + 1, a.shape.end());
  if (a.shape == input_shape) return single();
  if (!a.shape.empty() && tail == input_shape && a.shape[0] > 0) return batch();
  if (a.data.size() == per_sample && squeeze(a.shape) == squeeze(input_shape)) return single();
  if (!a.shape.empty() && a.shape[0] > 0 && squeeze(tail) == squeeze(input_shape)) return batch();
  throw error(
      fmt::format("{}: the array has shape {}, but the network's input has shape {}; pass an array of shape {} "
                  "or a batch (N, …) of them",
                  source, shape_str(a.shape), shape_str(input_shape), shape_str(input_shape)));
}

}  // namespace provnn::engine
