#!/usr/bin/python3
"""test_data - the DATA phase of spoolgate-smtpd, byte by byte.

SMTP smuggling: a bare LF or bare CR around a dot never ends the data, so
a pipelined "MAIL FROM" after "\\n.\\n" stays content and no second message
is born.  Dot-unstuffing, the terminator split over many TCP writes, an
empty message, a 200 KB line, a pipelined burst of three transactions in
one write, 8-bit content.  Raw sockets: smtplib would normalise what these
tests need to send.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, log, queued_id, split_stored

SMUGGLE_TAIL = b'MAIL FROM:<x@y>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\nsmuggled\r\n.\r\n'


class DataPhase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('data')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def open(self):
        c = RawSMTP(self.gw.smtp_addr)
        self.addCleanup(c.close)
        c.ehlo()
        return c

    def begin(self, c, mail='MAIL FROM:<alice@example.org>'):
        """MAIL/RCPT/DATA pipelined in one write; expects 250 250 354."""
        c.send(mail.encode() + b'\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n')
        r = c.replies(3)
        self.assertEqual([x.code for x in r], [250, 250, 354], r)

    def stored_content(self, msgid):
        name = self.gw.find_mail('bob', msgid)
        self.assertIsNotNone(name, 'message %s not in mail/bob/new' % msgid)
        return split_stored(self.gw.read_mail('bob', name))[2]

    def one_message(self, body):
        """Send body (terminator included) after a pipelined MAIL/RCPT/DATA.
        Exactly one 250 must come back, nothing else, and exactly one new
        file.  Returns its stored content."""
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        self.begin(c)
        c.send(body)
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'end of data')
        self.assertTrue(c.nothing_more(1.0),
                        'more replies after the one message: %r' % c.buf[:300])
        assert_reply(self, c.cmd('NOOP'), 250, what='NOOP after the message')
        assert_reply(self, c.cmd('QUIT'), 221)
        new = set(self.gw.mailbox_new('bob')) - before
        self.assertEqual(len(new), 1, 'expected exactly one new message, got %s' % sorted(new))
        msgid = queued_id(r.text)
        self.assertTrue(list(new)[0].startswith(msgid + '.'), (new, msgid))
        return self.stored_content(msgid)

    # ---------------------------------------------------------- smuggling

    def test_smuggling_bare_lf(self):
        """'a\\n.\\nMAIL FROM...' is content: one message holding the smuggled text"""
        content = self.one_message(b'a\n.\n' + SMUGGLE_TAIL)
        self.assertEqual(content, b'a\n.\nMAIL FROM:<x@y>\nRCPT TO:<bob@localhost>\nDATA\n'
                                  b'smuggled\n')

    def test_smuggling_bare_cr(self):
        """'a\\r.\\rMAIL FROM...' is content: one message, bare CRs kept"""
        content = self.one_message(b'a\r.\r' + SMUGGLE_TAIL)
        self.assertTrue(content.startswith(b'a\r'), content)
        self.assertIn(b'\rMAIL FROM:<x@y>\nRCPT TO:<bob@localhost>\nDATA\nsmuggled\n', content)
        self.assertTrue(content.endswith(b'smuggled\n'), content)

    def test_smuggling_lf_dot_crlf(self):
        """'a\\n.\\r\\nMAIL FROM...' is content: one message"""
        content = self.one_message(b'a\n.\r\n' + SMUGGLE_TAIL)
        self.assertEqual(content, b'a\n.\nMAIL FROM:<x@y>\nRCPT TO:<bob@localhost>\nDATA\n'
                                  b'smuggled\n')

    def test_smuggling_cr_dot_crlf(self):
        """'a\\r.\\r\\nMAIL FROM...' is content: one message"""
        content = self.one_message(b'a\r.\r\n' + SMUGGLE_TAIL)
        self.assertEqual(content, b'a\r.\nMAIL FROM:<x@y>\nRCPT TO:<bob@localhost>\nDATA\n'
                                  b'smuggled\n')

    # ---------------------------------------------------------- transparency

    def test_dot_unstuffing(self):
        """'..line' stored as '.line'; '..' as '.'; '...x' as '..x'"""
        content = self.one_message(b'Subject: dots\r\n\r\n..line\r\n...two\r\n..\r\n'
                                   b'middle . dot\r\n.x\r\nend\r\n.\r\n')
        self.assertEqual(content, b'Subject: dots\n\n.line\n..two\n.\nmiddle . dot\nx\nend\n')

    def test_terminator_split_across_writes(self):
        """<CRLF>.<CRLF> split over five TCP writes still ends the data once"""
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        self.begin(c)
        for piece in (b'Subject: split\r\n\r\nbody', b'\r', b'\n.', b'\r', b'\n'):
            c.send(piece)
            time.sleep(0.1)
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0')
        self.assertTrue(c.nothing_more(0.5))
        self.assertEqual(len(set(self.gw.mailbox_new('bob')) - before), 1)
        self.assertEqual(self.stored_content(queued_id(r.text)), b'Subject: split\n\nbody\n')

    def test_empty_message(self):
        """'.' right after DATA (its CRLF counts) ends an empty message"""
        content = self.one_message(b'.\r\n')
        self.assertEqual(content, b'')

    def test_long_line(self):
        """a 200 KB single line is stored intact"""
        line = bytes((ord('a') + i % 26) for i in range(200 * 1024))
        content = self.one_message(line + b'\r\n.\r\n')
        self.assertEqual(len(content), len(line) + 1)
        self.assertEqual(content, line + b'\n')

    def test_bare_lf_and_bare_cr_kept(self):
        """bare LF line endings are stored as LF, a bare CR inside a line is kept"""
        content = self.one_message(b'Subject: lf\n\nx\ny\rz\r\n.\r\n')
        self.assertEqual(content, b'Subject: lf\n\nx\ny\rz\n')

    def test_8bit(self):
        """8-bit body (BODY=8BITMIME) stored byte for byte"""
        body = ('Subject: 8bit\r\n\r\nGr\u00fc\u00dfe, \u65e5\u672c\r\n'.encode('utf-8')
                + bytes(range(0x80, 0x100)) + b'\r\n')
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        self.begin(c, 'MAIL FROM:<alice@example.org> BODY=8BITMIME')
        c.send(body + b'.\r\n')
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0')
        self.assertEqual(len(set(self.gw.mailbox_new('bob')) - before), 1)
        self.assertEqual(self.stored_content(queued_id(r.text)), body.replace(b'\r\n', b'\n'))

    def test_return_path_dropped(self):
        """the sender's Return-Path: fields (folded too) are dropped: one Return-Path, ours; body lines stay"""
        body = (b'Return-Path: <forged@evil.example>\r\nSubject: rp\r\n'
                b'return-path:\r\n <folded@evil.example>\r\n\t(more)\r\nX-Kept: 1\r\n\r\n'
                b'Return-Path: <a body line stays>\r\n')
        stored_before = set(self.gw.mailbox_new('bob'))
        content = self.one_message(body + b'.\r\n')
        self.assertEqual(content, b'Subject: rp\nX-Kept: 1\n\nReturn-Path: <a body line stays>\n')
        new = set(self.gw.mailbox_new('bob')) - stored_before
        data = self.gw.read_mail('bob', new.pop())
        head = data.partition(b'\n\n')[0]
        fields = [l for l in head.split(b'\n') if l.lower().startswith(b'return-path')]
        self.assertEqual(fields, [b'Return-Path: <alice@example.org>'])

    def test_disconnect_mid_data(self):
        """client gone in the middle of DATA: no message, no temporary left behind"""
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        self.begin(c)
        c.send(b'Subject: cut\r\n\r\n' + b'half a message\r\n' * 1000)
        c.close()
        harness.wait_until(lambda: self.gw.listdir('tmp') == [], 5, 'spool/tmp to be empty')
        self.assertEqual(set(self.gw.mailbox_new('bob')), before)
        self.assertEqual(self.gw.listdir('mail', 'bob', 'tmp'), [])

    # ---------------------------------------------------------- pipelining

    def test_bare_lf_commands(self):
        """commands ended by a bare LF work too"""
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        c.send(b'MAIL FROM:<alice@example.org>\nRCPT TO:<bob@localhost>\nDATA\n')
        self.assertEqual([r.code for r in c.replies(3)], [250, 250, 354])
        c.send(b'Subject: lf\r\n\r\nlf commands\r\n.\r\nNOOP\n')
        self.assertEqual([r.code for r in c.replies(2)], [250, 250])
        self.assertEqual(len(set(self.gw.mailbox_new('bob')) - before), 1)

    def test_unread_replies(self):
        """50000 pipelined NOOPs sent before reading any reply: every reply comes, in order"""
        n = 50000
        c = self.open()
        done = []

        def writer():
            try:
                c.send(b'NOOP\r\n' * n + b'QUIT\r\n')
                done.append(True)
            except OSError as e:
                done.append(e)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(1.0)			# let the server's output back up
        codes = [c.reply(timeout=20).code for _ in range(n + 1)]
        t.join(20)
        self.assertEqual(done, [True])
        self.assertEqual(codes.count(250), n)
        self.assertEqual(codes[-1], 221)

    def test_pipelined_burst(self):
        """three whole transactions in one write: three messages, replies in order"""
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        burst = b''
        for i in range(3):
            burst += (b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n'
                      b'Subject: burst %d\r\n\r\nbody %d\r\n.\r\n' % (i, i))
        burst += b'QUIT\r\n'
        c.send(burst)
        replies = c.replies(13)
        codes = [r.code for r in replies]
        self.assertEqual(codes, [250, 250, 354, 250] * 3 + [221], replies)
        ids = [queued_id(replies[4 * i + 3].text) for i in range(3)]
        self.assertEqual(len(set(ids)), 3, ids)
        new = set(self.gw.mailbox_new('bob')) - before
        self.assertEqual(len(new), 3, sorted(new))
        for i, msgid in enumerate(ids):
            self.assertEqual(self.stored_content(msgid),
                             b'Subject: burst %d\n\nbody %d\n' % (i, i))
        log('  burst ids: %s' % ' '.join(ids))


if __name__ == '__main__':
    harness.main()
