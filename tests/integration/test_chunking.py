#!/usr/bin/python3
"""test_chunking - BDAT (RFC 3030 CHUNKING) and BODY=BINARYMIME.

Raw sockets: the chunk boundaries, pipelining and the octets after a
refused BDAT are what is tested, and no library client lets a test place
them.  Every reply is checked with its code and enhanced code.
"""

import hashlib
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, queued_id, split_stored, wait_until

MSG = (b'From: alice@example.org\r\nTo: bob@localhost\r\nSubject: chunks\r\n\r\n'
       b'.a line with a leading dot stays as sent\r\n'
       b'..two dots too\r\n.\r\n'
       b'bare\nLF and bare\rCR\r\nlast line\r\n')


def stored_form(wire):
    """What DATA would store for the same message: CRLF -> LF, nothing else."""
    return wire.replace(b'\r\n', b'\n')


class Chunking(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('chunking', max_message_size=100000)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def open(self):
        c = RawSMTP(self.gw.smtp_addr)
        self.addCleanup(c.close)
        c.ehlo()
        return c

    def begin(self, c, mail='MAIL FROM:<alice@example.org>'):
        assert_reply(self, c.cmd(mail), 250, '2.1.0', 'MAIL')
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250, '2.1.5', 'RCPT')

    def content(self, msgid):
        name = self.gw.find_mail('bob', msgid)
        self.assertIsNotNone(name, 'message %s not in mail/bob/new' % msgid)
        return split_stored(self.gw.read_mail('bob', name))[2]

    def stored_nothing_new(self, before):
        self.assertEqual(set(self.gw.mailbox_new('bob')) - before, set(), 'a message was stored')
        self.assertEqual(self.gw.listdir('tmp'), [], 'temporaries left in tmp/')

    def test_ehlo_offers_chunking_and_binarymime(self):
        """EHLO announces CHUNKING and BINARYMIME"""
        c = RawSMTP(self.gw.smtp_addr)
        self.addCleanup(c.close)
        r = c.cmd('EHLO client.example')
        assert_reply(self, r, 250)
        self.assertIn('CHUNKING', r.lines)
        self.assertIn('BINARYMIME', r.lines)

    def test_pipelined_chunks_equal_data(self):
        """MAIL, RCPT and three BDATs in one write (a CRLF split across two chunks): same stored bytes as DATA"""
        c = self.open()
        cut = MSG.index(b'\r\n', 30) + 1
        a, b, rest = MSG[:cut], MSG[cut:cut + 40], MSG[cut + 40:]
        self.assertTrue(a.endswith(b'\r') and b.startswith(b'\n'), 'the split must cut a CRLF')
        c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\n'
               + b'BDAT %d\r\n' % len(a) + a + b'BDAT %d\r\n' % len(b) + b
               + b'BDAT %d LAST\r\n' % len(rest) + rest)
        r = c.replies(5)
        assert_reply(self, r[0], 250, '2.1.0', 'MAIL')
        assert_reply(self, r[1], 250, '2.1.5', 'RCPT')
        assert_reply(self, r[2], 250, '2.0.0', 'first chunk')
        self.assertIn('%d octets received' % len(a), r[2].text)
        assert_reply(self, r[3], 250, '2.0.0', 'second chunk')
        assert_reply(self, r[4], 250, '2.0.0', 'BDAT LAST')
        self.assertTrue(c.nothing_more(0.5), 'more replies: %r' % c.buf)
        by_bdat = self.content(queued_id(r[4].text))
        self.assertEqual(by_bdat, stored_form(MSG))
        # The same message by DATA (dot-stuffed on the wire) is stored the same.
        self.begin(c)
        assert_reply(self, c.cmd('DATA'), 354)
        stuffed = MSG.replace(b'\r\n.', b'\r\n..')
        stuffed = (b'.' + stuffed) if stuffed.startswith(b'.') else stuffed
        c.send(stuffed + b'.\r\n')
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'DATA')
        self.assertEqual(self.content(queued_id(r.text)), by_bdat, 'BDAT and DATA stored differently')

    def test_bdat_last(self):
        """BDAT <size> LAST alone: 250 2.0.0 queued, stored; then a chunk and BDAT 0 LAST"""
        c = self.open()
        self.begin(c)
        one = b'Subject: one\r\n\r\nbody'
        c.send(b'BDAT %d LAST\r\n' % len(one) + one)
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'BDAT <size> LAST')
        self.assertIn('queued as', r.text)
        self.assertEqual(self.content(queued_id(r.text)), b'Subject: one\n\nbody')
        self.begin(c)
        c.send(b'BDAT 14\r\nSubject: z\r\n\r\n')
        assert_reply(self, c.reply(), 250, '2.0.0', 'chunk')
        r = c.cmd('BDAT 0 last')
        assert_reply(self, r, 250, '2.0.0', 'BDAT 0 LAST')
        self.assertEqual(self.content(queued_id(r.text)), b'Subject: z\n\n')

    def test_malformed_size(self):
        """BDAT without a size, with letters, with junk after LAST, over 64 bits: 501 5.5.4"""
        c = self.open()
        self.begin(c)
        for arg in ('BDAT', 'BDAT abc', 'BDAT -1', 'BDAT 10 NOTLAST', 'BDAT 10 LAST x',
                    'BDAT 99999999999999999999999'):
            assert_reply(self, c.cmd(arg), 501, '5.5.4', arg)
        c.send(b'BDAT 3 LAST\r\nx\r\n')
        assert_reply(self, c.reply(), 250, '2.0.0', 'the transaction survives the 501s')

    def test_out_of_sequence_chunk_is_read_and_dropped(self):
        """BDAT without MAIL, and without RCPT: 503 5.5.1 after its octets, which are never commands"""
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        evil = b'MAIL FROM:<x@y>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n'
        c.send(b'BDAT %d\r\n' % len(evil) + evil + b'NOOP\r\n')
        assert_reply(self, c.reply(), 503, '5.5.1', 'BDAT without MAIL')
        assert_reply(self, c.reply(), 250, '2.0.0', 'NOOP right after the dropped chunk')
        self.assertTrue(c.nothing_more(0.5), 'the chunk was read as commands: %r' % c.buf)
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250, '2.1.0')
        c.send(b'BDAT %d LAST\r\n' % len(evil) + evil + b'NOOP\r\n')
        r = c.reply()
        assert_reply(self, r, 503, '5.5.1', 'BDAT without RCPT')
        self.assertIn('need RCPT', r.text)
        assert_reply(self, c.reply(), 250, '2.0.0', 'NOOP')
        self.stored_nothing_new(before)

    def test_data_after_bdat_and_binarymime_with_data(self):
        """DATA after a BDAT chunk: 503 5.5.1; DATA with BODY=BINARYMIME: 503 5.5.1"""
        c = self.open()
        self.begin(c)
        c.send(b'BDAT 10\r\nSubject: a')
        assert_reply(self, c.reply(), 250, '2.0.0', 'chunk')
        r = c.cmd('DATA')
        assert_reply(self, r, 503, '5.5.1', 'DATA after BDAT')
        self.assertIn('DATA after BDAT', r.text)
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 503, '5.5.1', 'MAIL between chunks')
        c.send(b'BDAT 4 LAST\r\n\r\n\r\n')
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'the message ends with BDAT LAST')
        self.assertEqual(self.content(queued_id(r.text)), b'Subject: a\n\n')
        self.begin(c, 'MAIL FROM:<alice@example.org> BODY=BINARYMIME')
        r = c.cmd('DATA')
        assert_reply(self, r, 503, '5.5.1', 'DATA with BODY=BINARYMIME')
        self.assertIn('BINARYMIME', r.text)
        assert_reply(self, c.cmd('RSET'), 250, '2.0.0')

    def test_binarymime_stored_byte_for_byte(self):
        """BODY=BINARYMIME over BDAT: the header with LF as any message, the body (NUL, bare LF, CR, CRLF,
        'Return-Path:' and 'Received:' lines) stored exactly as sent (sha256), whatever the chunk split"""
        body = (bytes(range(256)) * 64 + b'\r\nReturn-Path: <kept@body>\r\nReceived: kept\r\n\n\r\x00\r'
                + b'Received: x\r\n' * 60)		# over max_hops if counted: the body is not header
        header = (b'From: alice@example.org\r\nReturn-Path: <dropped@header>\r\nMIME-Version: 1.0\r\n'
                  b'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n')
        msg = header + body
        want = header.replace(b'Return-Path: <dropped@header>\r\n', b'').replace(b'\r\n', b'\n') + body
        c = self.open()
        self.begin(c, 'MAIL FROM:<alice@example.org> BODY=BINARYMIME')
        half = len(msg) // 2
        c.send(b'BDAT %d\r\n' % half + msg[:half])
        assert_reply(self, c.reply(), 250, '2.0.0', 'first half')
        c.send(b'BDAT %d LAST\r\n' % (len(msg) - half) + msg[half:])
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'BDAT LAST')
        got = self.content(queued_id(r.text))
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(want).hexdigest())
        # The header's CRLF at the end of a chunk, its LF at the start of the next.
        self.begin(c, 'MAIL FROM:<alice@example.org> BODY=BINARYMIME')
        cut = len(header) - 1
        c.send(b'BDAT %d\r\n' % cut + msg[:cut])
        assert_reply(self, c.reply(), 250, '2.0.0', 'the header but its last LF')
        c.send(b'BDAT %d LAST\r\n' % (len(msg) - cut) + msg[cut:])
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'BDAT LAST')
        self.assertEqual(hashlib.sha256(self.content(queued_id(r.text))).hexdigest(),
                         hashlib.sha256(want).hexdigest())

    def test_over_max_message_size(self):
        """a chunk over max_message_size: read to its end, 552 5.3.4; the pipelined BDAT LAST gets 503, dropped"""
        before = set(self.gw.mailbox_new('bob'))
        c = self.open()
        self.begin(c)
        c.send(b'BDAT 60000\r\n' + b'x' * 60000)
        assert_reply(self, c.reply(), 250, '2.0.0', 'first 60000 octets within the limit')
        tail = b'y' * 50000
        c.send(b'BDAT %d\r\n' % len(tail) + tail + b'BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n')
        assert_reply(self, c.reply(), 552, '5.3.4', 'over max_message_size')
        assert_reply(self, c.reply(), 503, '5.5.1', 'the BDAT pipelined after the failed one')
        assert_reply(self, c.reply(), 250, '2.0.0', 'the NOOP after its chunk')
        self.assertTrue(c.nothing_more(0.5), 'the dropped chunk was read as a command: %r' % c.buf)
        assert_reply(self, c.cmd('NOOP'), 250, '2.0.0', 'in step again')
        self.stored_nothing_new(before)

    def test_disconnect_mid_chunk(self):
        """the client hangs up in the middle of a chunk: nothing stored, no temporary, logged as discarded"""
        before = set(self.gw.mailbox_new('bob'))
        start = len(self.gw.read_log('smtpd'))
        c = self.open()
        self.begin(c)
        c.send(b'BDAT 1000 LAST\r\n' + b'z' * 400)
        time.sleep(0.2)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        c.close()
        wait_until(lambda: 'event=discarded' in self.gw.read_log('smtpd', start), 5, 'event=discarded')
        self.assertIn('octets=400', self.gw.read_log('smtpd', start))
        self.stored_nothing_new(before)

    def test_binarymime_relayed_by_bdat_to_spoolgate(self):
        """the relay to a server offering CHUNKING and BINARYMIME (a second spoolgate): MAIL ... BODY=BINARYMIME,
        one BDAT ... LAST, the next hop stores what we stored, byte for byte (sha256), record in sent/"""
        nexthop = harness.Instance('chunking-nexthop', local_domains='example.net')
        self.addCleanup(nexthop.cleanup)
        nexthop.start_smtpd()
        gw = harness.Instance('chunking-bdat-relay', smarthost='127.0.0.1:%d' % nexthop.port)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        c = RawSMTP(gw.smtp_addr)
        self.addCleanup(c.close)
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org> BODY=BINARYMIME'), 250, '2.1.0')
        assert_reply(self, c.cmd('RCPT TO:<bob@example.net>'), 250, '2.1.5')
        msg = (b'Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n'
               + bytes(range(256)) * 300 + b'\r\n.\r\n\n\r\x00')
        c.send(b'BDAT %d LAST\r\n' % len(msg) + msg)
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'queued for the relay')
        msgid = queued_id(r.text)
        wait_until(lambda: os.path.exists(gw.path('sent', msgid)), 15, 'the record in sent/')
        rec = open(gw.path('sent', msgid)).read()
        offset = int(re.search(r'data-offset: (\d+)', rec).group(1))
        ours = open(gw.path('data', msgid), 'rb').read()[offset:]
        box = wait_until(lambda: nexthop.mailbox_new('bob'), 10, 'the message at the next hop')
        theirs = nexthop.read_mail('bob', box[0])
        theirs = theirs[theirs.index(b'\n', theirs.index(b'\nReceived: ') + 1) + 1:]	# its Return-Path, Received
        while theirs[:1] in (b' ', b'\t'):
            theirs = theirs[theirs.index(b'\n') + 1:]
        self.assertEqual(hashlib.sha256(theirs).hexdigest(), hashlib.sha256(ours).hexdigest())
        self.assertTrue(theirs.endswith(b'\xff\r\n.\r\n\n\r\x00'), theirs[-20:])	# no dot-stuffing, no CRLF added
        wait_until(lambda: 'event=relay-sent' in gw.read_log('smtpd'), 10, 'the relay-sent line')
        hop_log = nexthop.read_log('smtpd')
        self.assertIn('verb=BDAT', hop_log)
        self.assertNotIn('verb=DATA', hop_log)

    def test_binarymime_is_never_relayed_with_data(self):
        """a BINARYMIME message for a server with CHUNKING but no BINARYMIME: failed/ with 554 5.6.3, nothing sent"""
        got = []

        def handle(sock):
            f = sock.makefile('rb')
            sock.sendall(b'220 sink ESMTP\r\n')
            for line in f:
                got.append(line)
                verb = line[:4].upper()
                if verb == b'EHLO':
                    sock.sendall(b'250-sink\r\n250-8BITMIME\r\n250 CHUNKING\r\n')
                elif verb == b'QUIT':
                    sock.sendall(b'221 bye\r\n')
                    return
                else:
                    sock.sendall(b'250 ok\r\n')

        srv = socket.socket()
        srv.bind(('127.0.0.1', 0))
        srv.listen(4)
        self.addCleanup(srv.close)

        def serve():
            while True:
                try:
                    s, _ = srv.accept()
                except OSError:
                    return
                with s:
                    handle(s)

        threading.Thread(target=serve, daemon=True).start()
        gw = harness.Instance('chunking-relay', smarthost='127.0.0.1:%d' % srv.getsockname()[1])
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        c = RawSMTP(gw.smtp_addr)
        self.addCleanup(c.close)
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org> BODY=BINARYMIME'), 250, '2.1.0')
        assert_reply(self, c.cmd('RCPT TO:<bob@example.net>'), 250, '2.1.5')
        msg = b'Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\n\r'
        c.send(b'BDAT %d LAST\r\n' % len(msg) + msg)
        r = c.reply()
        assert_reply(self, r, 250, '2.0.0', 'queued for the relay')
        msgid = queued_id(r.text)
        wait_until(lambda: os.path.exists(gw.path('failed', msgid)), 15, 'the record in failed/')
        text = open(gw.path('failed', msgid)).read()
        self.assertIn('body: binarymime', text)
        self.assertRegex(text, r'rcpt: failed <bob@example.net> 554 5\.6\.3 ')
        # What may reach the next hop is the bounce to alice (MAIL FROM:<>), never the message.
        self.assertFalse([l for l in got if l.startswith(b'MAIL FROM:<alice') or l[:4].upper() == b'BDAT'],
                         'the relay sent the message: %r' % got)


if __name__ == '__main__':
    harness.main()
