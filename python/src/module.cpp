// The `_provnn` extension module: the exception tree and the bindings of the other files.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "common/allocator.hpp"
#include "common/error.hpp"
#include "semirings/registry.hpp"

namespace provnn::python {
namespace {

// The Python classes mirroring provnn's exception tree (set once at import).
PyObject* error_type = nullptr;
PyObject* parse_error_type = nullptr;
PyObject* unsupported_error_type = nullptr;
PyObject* limit_error_type = nullptr;
PyObject* io_error_type = nullptr;

PyObject* new_exception(py::module_& m, const char* name, PyObject* base, const char* doc) {
  const std::string qualified = std::string("provnn.") + name;
  PyObject* t = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base, nullptr);
  if (!t) throw py::error_already_set();
  m.add_object(name, py::handle(t));
  return t;
}

}  // namespace
}  // namespace provnn::python

PYBIND11_MODULE(_provnn, m) {
  using namespace provnn::python;
  m.doc() = "Native core of the provnn package (import provnn instead).";

  error_type = new_exception(m, "Error", PyExc_RuntimeError, "Everything provnn raises (provnn::error).");
  parse_error_type = new_exception(m, "ParseError", error_type,
                                   "Malformed text or file content (ONNX, .npy, .pvc, rule or semiring names).");
  unsupported_error_type = new_exception(m, "UnsupportedError", error_type,
                                         "Well-formed but outside what provnn handles (an op type, a dtype).");
  limit_error_type = new_exception(m, "LimitError", error_type,
                                   "A resource limit was hit (monomials, terms, sizes); the message says how to raise it.");
  io_error_type = new_exception(m, "ProvnnIOError", error_type, "The file system said no (open, read, write, rename).");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const provnn::parse_error& e) {
      PyErr_SetString(parse_error_type, e.what());
    } catch (const provnn::unsupported_error& e) {
      PyErr_SetString(unsupported_error_type, e.what());
    } catch (const provnn::limit_error& e) {
      PyErr_SetString(limit_error_type, e.what());
    } catch (const provnn::io_error& e) {
      PyErr_SetString(io_error_type, e.what());
    } catch (const provnn::error& e) {
      PyErr_SetString(error_type, e.what());
    }
  });

  bind_model(m);
  bind_circuit(m);

  m.def("retain_freed_memory", &provnn::retain_freed_memory,
        "Keep freed memory in the process (glibc: mmap threshold 32 MiB, trim threshold 256 MiB), so a "
        "loop of circuit builds reuses warm pages instead of faulting in fresh ones (1.6-6.5x faster "
        "builds in the loops measured); freed memory then stays with the process. Process-wide, so not "
        "done at import; returns False when it does not apply (MALLOC_* or GLIBC_TUNABLES set by the "
        "user, or not glibc).");
  m.def(
      "semirings",
      [] {
        py::list out;
        for (const auto& s : provnn::list_semirings()) {
          py::dict d;
          d["name"] = s.name;
          py::list props;
          const auto names = provnn::property_names(s.properties);
          std::string_view rest = names;
          while (!rest.empty()) {
            const auto comma = rest.find(", ");
            props.append(py::str(std::string(rest.substr(0, comma))));
            if (comma == std::string_view::npos) break;
            rest = rest.substr(comma + 2);
          }
          d["properties"] = props;
          d["question"] = s.question;
          out.append(d);
        }
        return out;
      },
      "Every registered semiring as a dict {name, properties (list of str), question}, in the order "
      "`provnn semirings` lists them.");
}
