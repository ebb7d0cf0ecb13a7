#!/usr/bin/python3
"""test_reply_table - every reply code has a test that provokes it.

No daemon runs here: this checks the map tests/integration/reply_codes.tsv.
- every code of shared/reply-codes.md (the seed table; read from
  $SPOOLGATE_SRC/../shared/reply-codes.md or /work/shared/reply-codes.md, else
  the 33 codes it held, hard-coded as in tests/unit/test_errmap.c) has a row;
- each row names file::function of a test in this directory: the file exists
  and defines that function (def test_...), unless the row is "pending" and
  its file does not exist yet (a test another branch adds: ETRN, ATRN,
  CHECKPOINT, CHUNKING, SMTPUTF8); such rows are listed as skipped, and a
  code whose rows are all pending is reported, not failed;
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
            assert len(cols) == 5, '%s:%d: %d columns, want 5: %r' % (MAP, n, len(cols), line)
            code, esc, when, test, status = cols
            assert re.fullmatch(r'[2-5]\d\d', code), '%s:%d: code %r' % (MAP, n, code)
            assert esc == '-' or re.fullmatch(r'[245]\.\d{1,3}\.\d{1,3}', esc), '%s:%d: esc %r' % (MAP, n, esc)
            assert esc == '-' or esc[0] == code[0], '%s:%d: %s %s: classes differ' % (MAP, n, code, esc)
            assert re.fullmatch(r'test_\w+\.py::test_\w+', test), '%s:%d: test %r' % (MAP, n, test)
            assert status in ('ok', 'pending'), '%s:%d: status %r' % (MAP, n, status)
            rows.append({'line': n, 'code': int(code), 'esc': esc, 'when': when, 'test': test,
                         'status': status})
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
        """each code of shared/reply-codes.md is in reply_codes.tsv with a test that exists"""
        codes, where = seed_codes()
        harness.log('seed codes from %s: %d' % (where, len(codes)))
        self.assertGreaterEqual(len(codes), 33, where)
        only_pending = []
        for code in codes:
            rows = [r for r in self.rows if r['code'] == code]
            self.assertTrue(rows, 'reply code %d of %s has no row in %s' % (code, where, MAP))
            if not any(test_exists(r['test']) == 'present' for r in rows):
                self.assertTrue(all(r['status'] == 'pending' for r in rows),
                                'code %d: no row names a test that exists' % code)
                only_pending.append(code)
        if only_pending:
            harness.log('codes covered only by pending rows (their test files are not here yet): %s'
                        % ' '.join(map(str, only_pending)))

    def test_every_named_test_exists(self):
        """each row's file::function exists, or the row is pending and its file is missing"""
        skipped = []
        for r in self.rows:
            state = test_exists(r['test'])
            if state == 'present':
                continue
            self.assertEqual(state, 'no file', '%s:%d: %s: the file has no such function'
                             % (MAP, r['line'], r['test']))
            self.assertEqual(r['status'], 'pending', '%s:%d: %s does not exist' % (MAP, r['line'], r['test']))
            skipped.append(r['test'])
        if skipped:
            harness.log('pending rows skipped (file missing): %s' % ', '.join(skipped))

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
