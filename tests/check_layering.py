#!/usr/bin/env python3
"""Checks every #include of mtps's C++ code against the library layers.

The build runs this (target check_layering, part of every build), so a
wrong-way include fails the build. CMake writes the layers: one line
"owner|where|deps" per library (where = its folder, e.g. "ps/table/") or
program (where = its source files), deps = the mtps libraries it declares
(','-separated). The rules:

  1. A file may include headers of its own library and of the libraries its
     owner lists in DEPS, directly (a dependency's dependency needs its own
     entry, so a library's real dependencies are all written down).
  2. Folders are layers: a library in common/ depends only on common/ (and
     proto/), one in ps/ only on ps/ and common/, one in worker/ only on
     worker/ and common/. So nothing in ps/ or common/ includes worker/, and
     nothing in worker/ or common/ includes ps/.
  3. Every .h/.cc file under common/, ps/ and worker/ belongs to a library.
  4. Headers under tests/ that no library owns (test fixtures) may be
     included by programs under tests/; their own includes count as the
     including program's.

Usage: check_layering.py --root SOURCE_DIR --layers BUILD_DIR/layers.txt
Prints one line per violation (file:line: what and why) and exits 1 if any.
"""

import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
LAYER_DIRS = ("common/", "ps/", "worker/")
# Which top-level folders a library in each may depend on.
ALLOWED_FOLDERS = {
    "common/": ("common/", "proto/"),
    "ps/": ("ps/", "common/", "proto/"),
    "worker/": ("worker/", "common/", "proto/"),
    "proto/": ("proto/",),
}


def top_folder(path):
    return path.split("/", 1)[0] + "/"


def read_layers(path):
    libraries = {}  # name -> (folder, deps)
    programs = {}  # name -> (files, deps)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("|")
            if len(parts) != 3:
                sys.exit(f"{path}:{number}: expected owner|where|deps, got {line!r}")
            owner, where, deps = parts
            deps = [d for d in deps.split(",") if d]
            if where.endswith("/"):
                libraries[owner] = (where, deps)
            else:
                programs[owner] = ([w for w in where.split(",") if w], deps)
    return libraries, programs


def includes(root, rel):
    out = []
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                out.append((number, m.group(1)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--layers", required=True)
    args = parser.parse_args()
    root = args.root
    libraries, programs = read_layers(args.layers)
    folder_owner = {folder: name for name, (folder, _) in libraries.items()}
    problems = []

    def owner_of(header):
        return folder_owner.get(os.path.dirname(header) + "/")

    for name, (folder, deps) in sorted(libraries.items()):
        allowed = ALLOWED_FOLDERS.get(top_folder(folder), ())
        for dep in deps:
            if dep not in libraries:
                problems.append(f"{folder}: {name} lists {dep}, which is not an mtps library")
            elif not libraries[dep][0].startswith(allowed):
                problems.append(
                    f"{folder}: {name} depends on {dep} ({libraries[dep][0]}), but a library in "
                    f"{top_folder(folder)} may depend only on {', '.join(allowed)}")

    def check_file(rel, owner, deps, may_include_tests):
        """Checks one file's includes; returns the test headers it includes."""
        extra = []
        for number, header in includes(root, rel):
            target = owner_of(header)
            if target is None:
                if header.startswith("tests/") and may_include_tests:
                    if os.path.isfile(os.path.join(root, header)):
                        extra.append(header)
                        continue
                problems.append(f"{rel}:{number}: includes \"{header}\", which no mtps library "
                                f"owns (libraries are the folders of {', '.join(sorted(folder_owner))})")
                continue
            if target == owner or target in deps:
                continue
            problems.append(
                f"{rel}:{number}: includes \"{header}\" of {target}, which {owner} does not list "
                f"in its DEPS (it lists: {', '.join(deps) or 'nothing'})")
        return extra

    owned = set()
    for name, (folder, deps) in sorted(libraries.items()):
        directory = os.path.join(root, folder)
        if not os.path.isdir(directory):
            problems.append(f"{folder}: folder of {name} does not exist")
            continue
        for entry in sorted(os.listdir(directory)):
            if entry.endswith((".h", ".cc")):
                rel = folder + entry
                owned.add(rel)
                check_file(rel, name, deps, may_include_tests=False)

    for name, (files, deps) in sorted(programs.items()):
        seen = set()
        pending = list(files)
        while pending:
            rel = pending.pop()
            if rel in seen:
                continue
            seen.add(rel)
            pending.extend(check_file(rel, name, deps, may_include_tests=rel.startswith("tests/")))

    for layer in LAYER_DIRS:
        for dirpath, _, filenames in os.walk(os.path.join(root, layer)):
            for entry in filenames:
                rel = os.path.relpath(os.path.join(dirpath, entry), root)
                if entry.endswith((".h", ".cc")) and rel not in owned:
                    problems.append(f"{rel}: belongs to no mtps library (a library is one folder "
                                    f"with an mtps_library() in its CMakeLists.txt)")

    for p in problems:
        print(p)
    if problems:
        print(f"check_layering: {len(problems)} problem(s); see the rules in "
              f"tests/check_layering.py and the README's Code map")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
