#!/usr/bin/python3
"""test_reply_table - every reply code has a test that provokes it.

No daemon runs here: this checks the map tests/integration/reply_codes.tsv.
- every code of shared/reply-codes.md (the seed table; read from
  $SPOOLGATE_SRC/../shared/reply-codes.md or /work/shared/reply-codes.md, else
  the 33 codes it held, hard-coded as in tests/unit/test_errmap.c) has a row;
- each row names file::function of a test in this directory: the file exists
  and defines that function (def test_...);
- each row's code and enhanced code is the code of some row of
  common/errmap.c (a reply the server can send);
- README.md's table "Every reply code" names each code and enhanced code
  of the map, and the test.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.environ.get('SPOOLGATE_SRC') or os.path.join(HERE, '..', '..'))
MAP = os.path.join(HERE, 'reply_codes.tsv')
SEED_CODES = [211, 214, 220, 221, 250, 251, 252, 253, 354, 355, 421, 432, 450, 451, 452, 453, 454,
              458, 459, 500, 501, 502, 503, 504, 521, 530, 534, 538, 550, 551, 552, 553, 554]


def seed_codes():
    """(codes, where they came from)."""
    for path in (os.path.join(SRC, '..', 'shared', 'reply-codes.md'), '/work/shared/reply-codes.md'):
        try:
            with open(path) as f:
                codes = [int(m.group(1)) for m in re.finditer(r'^\| (\d{3}) \|', f.read(), re.M)]
        except OSError:
            continue
        if codes:
            return codes, path
    return SEED_CODES, 'the copy in test_reply_table.py'


def read_map():
    rows = []
    with open(MAP) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line or line.startswith('#'):
                continue
            cols = line.split('\t')
            assert len(cols) == 4, '%s:%d: %d columns, want 4: %r' % (MAP, n, len(cols), line)
            code, esc, when, test = cols
            assert re.fullmatch(r'[2-5]\d\d', code), '%s:%d: code %r' % (MAP, n, code)
            assert esc == '-' or re.fullmatch(r'[245]\.\d{1,3}\.\d{1,3}', esc), '%s:%d: esc %r' % (MAP, n, esc)
            assert esc == '-' or esc[0] == code[0], '%s:%d: %s %s: classes differ' % (MAP, n, code, esc)
            assert re.fullmatch(r'test_\w+\.py::test_\w+', test), '%s:%d: test %r' % (MAP, n, test)
            rows.append({'line': n, 'code': int(code), 'esc': esc, 'when': when, 'test': test})
    return rows


def test_exists(test):
    """'present', 'no file' or 'no function'."""
    fname, func = test.split('::')
    try:
        with open(os.path.join(HERE, fname)) as f:
            src = f.read()
    except FileNotFoundError:
        return 'no file'
    return 'present' if re.search(r'^\s+def %s\(' % re.escape(func), src, re.M) else 'no function'


def errmap_pairs():
    """(code, esc) of every row of common/errmap.c."""
    with open(os.path.join(SRC, 'common', 'errmap.c')) as f:
        return {(int(c), e or '-') for c, e in re.findall(r'ROW\(\w+, (\d{3}), "([\d.]*)"', f.read())}


class ReplyTable(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rows = read_map()

    def test_every_seed_code_has_a_row(self):
        """each code of shared/reply-codes.md is in reply_codes.tsv (its tests: the next check)"""
        codes, where = seed_codes()
        harness.log('seed codes from %s: %d' % (where, len(codes)))
        self.assertGreaterEqual(len(codes), 33, where)
        for code in codes:
            rows = [r for r in self.rows if r['code'] == code]
            self.assertTrue(rows, 'reply code %d of %s has no row in %s' % (code, where, MAP))

    def test_every_named_test_exists(self):
        """each row's file::function exists"""
        for r in self.rows:
            state = test_exists(r['test'])
            self.assertEqual(state, 'present', '%s:%d: %s: %s' % (MAP, r['line'], r['test'], state))

    def test_every_row_is_a_reply_of_the_table(self):
        """each code and enhanced code of the map is a row of common/errmap.c"""
        pairs = errmap_pairs()
        self.assertGreater(len(pairs), 50)
        for r in self.rows:
            self.assertIn((r['code'], r['esc']), pairs, '%s:%d: %d %s is no reply of common/errmap.c'
                          % (MAP, r['line'], r['code'], r['esc']))

    def test_readme_lists_every_row(self):
        """README.md's table "Every reply code" names each code, enhanced code and test of the map"""
        with open(os.path.join(SRC, 'README.md')) as f:
            readme = f.read()
        m = re.search(r'^### Every reply code\n(.*?)(?=^#)', readme, re.M | re.S)
        self.assertIsNotNone(m, 'README.md has no section "### Every reply code"')
        table = m.group(1)
        for r in self.rows:
            cell = '`%d%s`' % (r['code'], '' if r['esc'] == '-' else ' ' + r['esc'])
            line = [l for l in table.splitlines() if l.startswith('| %s |' % cell) and r['test'] in l]
            self.assertTrue(line, 'README.md: no row "| %s | ... %s" in "Every reply code"' % (cell, r['test']))


if __name__ == '__main__':
    harness.main(binaries=())
