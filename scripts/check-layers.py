#!/usr/bin/env python3
"""Checks the include graph against the layer rules of STYLE.md ("Layers").

Usage: scripts/check-layers.py [--root DIR]   check the tree (default: this script's repository)
       scripts/check-layers.py --self-test     check that planted violations are caught

Rules:
  * src/<layer>/ may include "holdfast/..." public headers, its own "<layer>/..." headers and the
    headers of the layers listed in ALLOWED[layer]; nothing else in quotes.
  * Third-party headers are confined: <openssl/...> to src/tls/, <nghttp2/...> to src/http2/,
    <ares.h> to src/net/.
  * include/holdfast/ (the installed public API) includes only holdfast/ headers and C++ standard
    headers: no OpenSSL, nghttp2, c-ares or system headers (<sys/...>, <netinet/...>, ...).
  * tools/ (the CLI) includes only holdfast/ public headers, its own headers (files of tools/),
    C++ standard headers, CLI11 and a few process-level POSIX headers (signals, threads, rlimits,
    terminals: TOOL_POSIX_HEADERS); never sockets, OpenSSL, nghttp2, c-ares or src/ headers.
Prints one "file:line: message" per violation; exits 1 if there is any, else 0.
"""

import argparse
import os
import re
import sys
import tempfile

BELOW_HTTP = ["transport", "http1", "http2", "tls", "net", "event", "base"]
ALLOWED = {
    "base": [],
    "event": ["base"],
    "net": ["event", "base"],
    "tls": ["base"],
    "http1": ["base"],
    "http2": ["base"],
    "transport": ["net", "tls", "event", "base"],
    "http": BELOW_HTTP,
    "client": ["http"] + BELOW_HTTP,
    "server": ["http"] + BELOW_HTTP,
    "api": ["client", "server", "http"] + BELOW_HTTP,
}
# Third-party headers and the one layer allowed to use each.
CONFINED = [
    (re.compile(r"^openssl/"), "tls", "OpenSSL headers"),
    (re.compile(r"^nghttp2/"), "http2", "nghttp2 headers"),
    (re.compile(r"^ares(_[a-z_]+)?\.h$"), "net", "c-ares headers"),
]
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
STD_HEADER_RE = re.compile(r"^[a-z_0-9]+$")  # <string>, <cstdint>, <system_error>
# What a command-line program needs from POSIX besides the library: signals for a clean shutdown,
# sigmask per thread, RLIMIT_NOFILE, isatty. Networking stays behind the public API.
TOOL_POSIX_HEADERS = {
    "signal.h", "pthread.h", "unistd.h", "fcntl.h", "termios.h", "sys/types.h", "sys/stat.h",
    "sys/ioctl.h", "sys/resource.h", "sys/wait.h", "sys/prctl.h", "poll.h", "malloc.h",
}
SOURCE_EXTS = (".h", ".hh", ".hpp", ".cc", ".cpp")


def includes(path):
    """Yields (line number, '<' or '"', header) for each #include of a file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE_RE.match(line)
            if m:
                yield number, m.group(1), m.group(2)


def source_files(root, subdir):
    base = os.path.join(root, subdir)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(SOURCE_EXTS):
                yield os.path.join(dirpath, name)


def check_src_include(layer, kind, header):
    """Returns the violation message for one include of a src/<layer>/ file, or None."""
    if kind == "<":
        for pattern, owner, what in CONFINED:
            if pattern.match(header) and layer != owner:
                return f"<{header}>: {what} are allowed only in src/{owner}/"
        return None
    top = header.split("/", 1)[0]
    if "/" not in header:
        return f'"{header}": include private headers as "layer/file.h"'
    if top == "holdfast" or top == layer:
        return None
    if top not in ALLOWED:
        return f'"{header}": not a public header nor a layer of src/'
    if top not in ALLOWED[layer]:
        allowed = ", ".join(ALLOWED[layer]) or "no other layer"
        return f'"{header}": layer {layer} must not depend on {top} (allowed: {allowed})'
    return None


def check_public_include(kind, header):
    if header.startswith("holdfast/"):
        return None
    if kind == "<" and STD_HEADER_RE.match(header):
        return None
    return (f"{kind}{header}{'>' if kind == '<' else kind}: public headers may include only "
            "holdfast/ headers and C++ standard headers")


def check_tool_include(kind, header, path, root):
    if header.startswith("holdfast/"):
        return None
    if kind == "<":
        if STD_HEADER_RE.match(header) or header.startswith("CLI/") or header in TOOL_POSIX_HEADERS:
            return None
        return (f"<{header}>: the CLI may include only holdfast/ public headers, its own headers, "
                "C++ standard headers, CLI11 and process-level POSIX headers (no networking)")
    local = os.path.realpath(os.path.join(os.path.dirname(path), header))
    tools = os.path.realpath(os.path.join(root, "tools")) + os.sep
    if local.startswith(tools) and os.path.isfile(local):
        return None
    return (f'"{header}": the CLI may include only holdfast/ public headers and its own headers '
            "(files of tools/), never the library's private src/ headers")


def check_tree(root):
    """Returns the list of 'file:line: message' violations under root."""
    violations = []

    def report(path, number, message):
        violations.append(f"{os.path.relpath(path, root)}:{number}: {message}")

    src = os.path.join(root, "src")
    for path in source_files(root, "src"):
        rel = os.path.relpath(path, src).split(os.sep)
        layer = rel[0] if len(rel) > 1 else None
        if layer not in ALLOWED:
            report(path, 1, f"file outside the known layers ({', '.join(ALLOWED)})")
            continue
        for number, kind, header in includes(path):
            message = check_src_include(layer, kind, header)
            if message:
                report(path, number, message)
    for path in source_files(root, "include"):
        for number, kind, header in includes(path):
            message = check_public_include(kind, header)
            if message:
                report(path, number, message)
    for path in source_files(root, "tools"):
        for number, kind, header in includes(path):
            message = check_tool_include(kind, header, path, root)
            if message:
                report(path, number, message)
    return violations


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def self_test():
    """Plants one violation of each rule next to clean files; every one must be caught, no more."""
    clean = {
        "src/base/a.cc": '#include "base/a.h"\n#include "holdfast/url.h"\n#include <string>\n',
        "src/net/b.cc": '#include "event/loop.h"\n#include <ares.h>\n#include <sys/socket.h>\n',
        "src/tls/c.cc": '#include <openssl/ssl.h>\n#include "base/buf.h"\n',
        "src/http/d.cc": '#include "transport/t.h"\n#include "http2/s.h"\n',
        "src/api/e.cc": '#include "client/c.h"\n#include "server/s.h"\n',
        "include/holdfast/f.h": '#include <cstdint>\n#include "holdfast/result.h"\n',
        "tools/holdfast/main.cc": '#include <CLI/CLI.hpp>\n#include "holdfast/client.h"\n'
                                  '#include "routes.h"\n#include <signal.h>\n',
        "tools/holdfast/routes.h": '#include <string>\n',
    }
    planted = {
        "src/base/bad1.cc": ('#include <string>\n#include "event/loop.h"\n', 2, "base must not"),
        "src/http1/bad2.cc": ('#include <openssl/ssl.h>\n', 1, "OpenSSL headers"),
        "src/net/bad3.cc": ('#include <nghttp2/nghttp2.h>\n', 1, "nghttp2 headers"),
        "src/tls/bad4.cc": ('#include <ares.h>\n', 1, "c-ares headers"),
        "src/tls/bad5.cc": ('// x\n#include "net/socket.h"\n', 2, "tls must not"),
        "src/client/bad6.cc": ('#include "server/listener.h"\n', 1, "client must not"),
        "src/event/bad7.cc": ('#include "loop.h"\n', 1, '"layer/file.h"'),
        "src/misc/bad8.cc": ('\n', 1, "outside the known layers"),
        "include/holdfast/bad9.h": ('#include <sys/socket.h>\n', 1, "public headers"),
        "include/holdfast/bad10.h": ('#include "tls/context.h"\n', 1, "public headers"),
        "include/holdfast/bad11.h": ('  #  include <openssl/ssl.h>\n', 1, "public headers"),
        "tools/holdfast/bad12.cc": ('#include "http/connection.h"\n', 1, "the CLI may"),
        "tools/holdfast/bad13.cc": ('#include <sys/socket.h>\n', 1, "the CLI may"),
        "tools/holdfast/bad14.cc": ('#include "missing.h"\n', 1, "the CLI may"),
    }
    with tempfile.TemporaryDirectory() as root:
        for rel, text in clean.items():
            write(root, rel, text)
        clean_violations = check_tree(root)
        for rel, (text, _, _) in planted.items():
            write(root, rel, text)
        found = check_tree(root)
    failures = [f"clean file flagged: {v}" for v in clean_violations]
    for rel, (_, line, needle) in planted.items():
        hits = [v for v in found if v.startswith(f"{rel}:{line}:") and needle in v]
        if len(hits) != 1:
            failures.append(f"planted violation not caught: {rel}:{line} ({needle})")
    if len(found) != len(planted):
        failures.append(f"expected {len(planted)} violations, got {len(found)}: {found}")
    for failure in failures:
        print(f"self-test: {failure}")
    print(f"self-test: {'FAILED' if failures else 'ok'} ({len(planted)} planted violations)")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--self-test", action="store_true", help="check that violations are caught")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    violations = check_tree(args.root)
    for v in violations:
        print(v)
    print(f"check-layers: {len(violations)} violation(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
