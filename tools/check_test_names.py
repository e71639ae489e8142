#!/usr/bin/env python3
"""Fails when a doctest test-case name would not survive ctest registration.

doctest_discover_tests passes each name through a CMake list: a ';' splits it into two
tests whose --test-case filters match nothing, so ctest reports them passed without running
anything (23 test cases were silently skipped that way until 2026-11-30). An unbalanced '['
or ']' breaks the generated bracket arguments. Usage: check_test_names.py TESTS_DIR
"""
import pathlib
import re
import sys

LITERAL = r'"(?:[^"\\]|\\.)*"'
CASE = re.compile(r'\bTEST_CASE(?:_TEMPLATE)?\(\s*((?:' + LITERAL + r'\s*)+)')


def names(text):
    for m in CASE.finditer(text):
        parts = re.findall(LITERAL, m.group(1))
        yield text.count('\n', 0, m.start()) + 1, ''.join(p[1:-1] for p in parts)


def main(root):
    bad = []
    count = 0
    for path in sorted(pathlib.Path(root).rglob('*.cpp')):
        for line, name in names(path.read_text(encoding='utf-8')):
            count += 1
            if ';' in name:
                bad.append(f'{path}:{line}: test name contains a \';\': "{name}"')
            elif name.count('[') != name.count(']'):
                bad.append(f'{path}:{line}: test name has unbalanced brackets: "{name}"')
    for b in bad:
        print(b)
    if count == 0:
        print(f'no TEST_CASE found under {root}')
        return 1
    print(f'{count} test names checked, {len(bad)} unusable with ctest')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'tests'))
