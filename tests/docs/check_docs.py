#!/usr/bin/env python3
"""The README stays a map, and the docs stay connected.

Fails (exit 1, one line per problem) when
  - README.md is larger than 12,288 bytes;
  - a relative link in README.md or docs/*.md points to a file that does not
    exist, or to a #heading the target page does not have;
  - a folder tracked by git, at the top level or one level below it, is not
    named in the README's layout map (the fenced block under "## Layout",
    one folder a line, two spaces of indent per level);
  - the README's "two commands" section no longer shows `bash examples/run.sh`
    and `bash tests/run.sh` as code blocks of their own, the scripts they
    name are missing, or .ci/run runs something other than the test command.

Plain Python on purpose: the rules are a few lines each, and GitHub's heading
anchors (lower case, punctuation dropped, spaces to hyphens, "-1" for a
repeated heading) are what a Markdown library would not compute for us.

    python3 tests/docs/check_docs.py [REPO_ROOT]
"""
import os
import re
import subprocess
import sys

README_LIMIT = 12288
MAIN_COMMAND = "bash examples/run.sh"
TEST_COMMAND = "bash tests/run.sh"

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def split_fences(text):
    """Yields (line, in_fence) for every line; fence lines count as fenced."""
    fenced = False
    for line in text.split("\n"):
        if FENCE.match(line.lstrip()):
            yield line, True
            fenced = not fenced
            continue
        yield line, fenced


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    seen = {}
    out = set()
    with open(path, encoding="utf-8") as f:
        for line, fenced in split_fences(f.read()):
            m = None if fenced else HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else "%s-%d" % (base, n))
    return out


def check_links(root, md_files):
    problems = []
    for md in md_files:
        path = os.path.join(root, md)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for lineno, (line, fenced) in enumerate(split_fences(text), 1):
            if fenced:
                continue
            line = re.sub(r"`[^`]*`", "", line)  # code spans are not links
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
                    continue
                file_part, _, anchor = target.partition("#")
                dest = path if file_part == "" else os.path.normpath(
                    os.path.join(os.path.dirname(path), file_part))
                where = "%s:%d: link %s" % (md, lineno, target)
                if not os.path.exists(dest):
                    problems.append("%s: no such file %s" % (where, os.path.relpath(dest, root)))
                elif anchor:
                    if not dest.endswith(".md"):
                        problems.append("%s: an anchor into a file that is not Markdown" % where)
                    elif anchor not in anchors(dest):
                        problems.append("%s: %s has no heading #%s"
                                        % (where, os.path.relpath(dest, root), anchor))
    return problems


def section(text, title):
    """The lines of the '## title' section of text (until the next '## ')."""
    out, inside = [], False
    for line, fenced in split_fences(text):
        if not fenced and line.startswith("## "):
            inside = line[3:].strip().startswith(title)
            continue
        if inside:
            out.append(line)
    return out


def code_blocks(lines):
    blocks, cur = [], None
    for line in lines:
        if FENCE.match(line.lstrip()):
            if cur is None:
                cur = []
            else:
                blocks.append("\n".join(cur).strip())
                cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def layout_folders(readme):
    blocks = code_blocks(section(readme, "Layout"))
    if not blocks:
        return None
    named, stack = set(), []
    for line in blocks[0].split("\n"):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        name = line.split()[0]
        depth = indent // 2
        del stack[depth:]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
            named.add("/".join(stack))
    return named


def tracked_folders(root):
    out = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("check_docs: `git ls-files` failed in %s: %s" % (root, out.stderr.strip()))
    folders = set()
    for f in out.stdout.splitlines():
        parts = f.split("/")[:-1]
        for depth in (1, 2):
            if len(parts) >= depth:
                folders.add("/".join(parts[:depth]))
    return folders


def check_commands(root, readme):
    problems = []
    lines = section(readme, "The two commands")
    if not lines:
        return ["README.md: no '## The two commands' section"]
    blocks = code_blocks(lines)
    for cmd in (MAIN_COMMAND, TEST_COMMAND):
        if cmd not in blocks:
            problems.append("README.md: the two commands: no code block that is exactly `%s`" % cmd)
        script = cmd.split()[1]
        if not os.path.isfile(os.path.join(root, script)):
            problems.append("README.md: the two commands: %s does not exist" % script)
    with open(os.path.join(root, ".ci", "run"), encoding="utf-8") as f:
        ci = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    if not ci or ci[-1] != TEST_COMMAND:
        problems.append(".ci/run: its last command is %r, the README's test command is %r"
                        % (ci[-1] if ci else "", TEST_COMMAND))
    return problems


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    readme_path = os.path.join(root, "README.md")
    problems = []
    size = os.path.getsize(readme_path)
    if size > README_LIMIT:
        problems.append("README.md: %d bytes, more than %d: move detail to docs/"
                        % (size, README_LIMIT))
    with open(readme_path, encoding="utf-8") as f:
        readme = f.read()
    docs_dir = os.path.join(root, "docs")
    md_files = ["README.md"] + sorted(
        "docs/" + n for n in os.listdir(docs_dir) if n.endswith(".md"))
    problems += check_links(root, md_files)
    named = layout_folders(readme)
    if named is None:
        problems.append("README.md: no code block under '## Layout'")
    else:
        for folder in sorted(tracked_folders(root) - named):
            problems.append("README.md: layout map does not name %s/" % folder)
    problems += check_commands(root, readme)
    for p in problems:
        print(p)
    print("check_docs: %d files, %d problems" % (len(md_files), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
