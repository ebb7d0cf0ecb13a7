#!/usr/bin/python3
"""test_limits - every bound of spoolgate-smtpd and its reply.

Command line over max_line (500 5.5.2, the session goes on), too many
recipients (452 4.5.3), message over max_message_size (552 5.3.4, nothing
stored), too many sessions (421), idle timeout (421 4.4.2), too many errors
(421), too many Received: headers (554 5.4.6), and a full disk (a 1 MB
tmpfs spool: 452 4.3.1, never 250, no partial file anywhere).
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, log, queued_id, split_stored


def gateway(tc, name, **cfg):
    gw = harness.Instance(name, **cfg)
    tc.addCleanup(gw.cleanup)
    gw.start_smtpd()
    return gw


def session(tc, gw):
    c = RawSMTP(gw.smtp_addr)
    tc.addCleanup(c.close)
    c.ehlo()
    return c


def stored_anything(gw):
    """Every file under mail/*/new, mail/*/tmp, data/, tmp/, queue/."""
    out = []
    for d in ('mail', 'data', 'tmp', 'queue', 'active'):
        out += gw.all_files(d)
    return out


class Limits(unittest.TestCase):

    def test_max_line(self):
        """max_line=512: 512 bytes ok, 513 -> one 500 5.5.2; a 100 KB line in pieces too"""
        gw = gateway(self, 'lim-line', max_line=512)
        c = session(self, gw)
        exact = b'NOOP ' + b'x' * (512 - 7) + b'\r\n'
        self.assertEqual(len(exact), 512)
        assert_reply(self, c.cmd(exact[:-2]), 250, what='line of exactly max_line bytes')
        assert_reply(self, c.cmd(b'NOOP ' + b'x' * (512 - 6)), 500, '5.5.2', 'max_line + 1')
        self.assertTrue(c.nothing_more(0.5), 'more than one reply to one long line: %r' % c.buf)
        assert_reply(self, c.cmd('NOOP'), 250, what='NOOP after long line')
        # 100 KB in 1 KB writes: still exactly one 500, then the session goes on.
        for i in range(100):
            c.send(b'y' * 1024)
        c.send(b'\r\n')
        assert_reply(self, c.reply(), 500, '5.5.2', '100 KB line')
        self.assertTrue(c.nothing_more(0.5), 'more than one reply to one long line: %r' % c.buf)
        # Long lines also with bare LF endings; a transaction still works.
        c.send(b'MAIL FROM:<' + b'a' * 600 + b'@example.org>\n')
        assert_reply(self, c.reply(), 500, '5.5.2', 'long MAIL line, bare LF')
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        assert_reply(self, c.cmd('Subject: after long lines\r\n\r\nok\r\n.'), 250, '2.0.0')

    def test_max_recipients(self):
        """max_recipients=3: the 4th RCPT gets 452 4.5.3; the 3 accepted get the message"""
        gw = gateway(self, 'lim-rcpt', max_recipients=3)
        c = session(self, gw)
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        for box in ('r1', 'r2', 'r3'):
            assert_reply(self, c.cmd('RCPT TO:<%s@localhost>' % box), 250, what=box)
        assert_reply(self, c.cmd('RCPT TO:<r4@localhost>'), 452, '4.5.3', '4th recipient')
        assert_reply(self, c.cmd('DATA'), 354)
        r = c.cmd('Subject: three\r\n\r\nthree\r\n.')
        assert_reply(self, r, 250, '2.0.0')
        msgid = queued_id(r.text)
        for box in ('r1', 'r2', 'r3'):
            self.assertIsNotNone(gw.find_mail(box, msgid), '%s did not get the message' % box)
        self.assertEqual(gw.mailbox_files('r4'), [])

    def test_recipient_overshoot_pipelined(self):
        """125 pipelined RCPTs then DATA: 100 x 250, 25 x 452 4.5.3, no 421; delivered to the 100"""
        gw = gateway(self, 'lim-rcpt-pipe', max_recipients=100, max_errors=20)
        c = session(self, gw)
        batch = b'MAIL FROM:<a@example.org>\r\n'
        batch += b''.join(b'RCPT TO:<p%d@localhost>\r\n' % i for i in range(125))
        batch += b'DATA\r\n'
        c.send(batch)
        assert_reply(self, c.reply(), 250, what='MAIL')
        for i in range(125):
            r = c.reply()
            if i < 100:
                assert_reply(self, r, 250, what='RCPT %d' % i)
            else:
                assert_reply(self, r, 452, '4.5.3', 'RCPT %d over max_recipients' % i)
        assert_reply(self, c.reply(), 354, what='DATA after the overshoot (RFC 5321 4.5.3.1.10)')
        r = c.cmd('Subject: many\r\n\r\nmany\r\n.')
        assert_reply(self, r, 250, '2.0.0', 'end of data')
        msgid = queued_id(r.text)
        for i in (0, 99):
            self.assertIsNotNone(gw.find_mail('p%d' % i, msgid), 'p%d has no copy' % i)
        self.assertIsNone(gw.find_mail('p100', msgid), 'p100 was over the limit')
        assert_reply(self, c.cmd('NOOP'), 250, what='session goes on')

    def test_unwritable_mailbox_is_temporary(self):
        """chmod 000 mail/alice: 451 4.3.0 (local fault, the client retries), never 550; fine once fixed"""
        gw = gateway(self, 'lim-perm')
        c = session(self, gw)

        def send(what):
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250, what=what)
            assert_reply(self, c.cmd('RCPT TO:<alice@localhost>'), 250, what=what)
            assert_reply(self, c.cmd('DATA'), 354, what=what)
            return c.cmd('Subject: %s\r\n\r\nbody\r\n.' % what)

        assert_reply(self, send('first'), 250, '2.0.0', 'first message creates the mailbox')
        box = gw.path('mail', 'alice')
        os.chmod(box, 0)
        self.addCleanup(os.chmod, box, 0o750)
        r = send('unwritable')
        assert_reply(self, r, 451, '4.3.0', 'mailbox directory the daemon cannot write')
        self.assertIn('reply=451', gw.read_log('smtpd'), 'the log does not show the 451')
        os.chmod(box, 0o750)
        assert_reply(self, send('again'), 250, '2.0.0', 'after the mailbox was fixed')
        self.assertEqual(len(gw.mailbox_new('alice')), 2)

    def test_max_message_size(self):
        """max_message_size=100000: 150 KB -> 552 5.3.4 after the data, nothing stored"""
        gw = gateway(self, 'lim-size', max_message_size=100000)
        c = session(self, gw)
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        line = b'z' * 98 + b'\r\n'
        c.send(b'Subject: big\r\n\r\n' + line * 1500)
        self.assertTrue(c.nothing_more(0.5), 'replied before the end of data: %r' % c.buf)
        c.send(b'.\r\n')
        assert_reply(self, c.reply(), 552, '5.3.4', 'message over max_message_size')
        self.assertEqual(stored_anything(gw), [], 'files left after a refused message')
        assert_reply(self, c.cmd('NOOP'), 250, what='session goes on')
        # A message within the limit still gets through.
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        c.send(b'Subject: small\r\n\r\n' + line * 500 + b'.\r\n')
        assert_reply(self, c.reply(), 250, '2.0.0', 'message within the limit')

    def test_max_sessions(self):
        """max_sessions=3: the 4th connection gets 421 and is closed; a slot frees on QUIT"""
        gw = gateway(self, 'lim-sess', max_sessions=3)
        conns = []
        for i in range(3):
            c = RawSMTP(gw.smtp_addr)
            self.addCleanup(c.close)
            self.assertEqual(c.greeting.code, 220, c.greeting)
            conns.append(c)
        extra = RawSMTP(gw.smtp_addr, greeting=False)
        self.addCleanup(extra.close)
        r = extra.reply()
        assert_reply(self, r, 421, '4.7.0', '4th session')
        self.assertTrue(extra.wait_closed(5), 'extra connection not closed after 421')
        assert_reply(self, conns[0].cmd('QUIT'), 221)
        conns[0].wait_closed(5)

        def slot_free():
            c = RawSMTP(gw.smtp_addr, greeting=False)
            try:
                return c.reply().code == 220
            finally:
                c.close()
        harness.wait_until(slot_free, 5, 'a session slot after QUIT', interval=0.2)
        # The sessions in place were not disturbed.
        for c in conns[1:]:
            assert_reply(self, c.cmd('NOOP'), 250)

    def test_max_sessions_per_client(self):
        """max_sessions_per_client=3: the 4th from 127.0.0.1 gets 421 4.7.0; 127.0.0.2 is still served"""
        gw = gateway(self, 'lim-client', max_sessions_per_client=3)
        conns = []
        for i in range(3):
            c = RawSMTP(gw.smtp_addr)
            self.addCleanup(c.close)
            self.assertEqual(c.greeting.code, 220, c.greeting)
            conns.append(c)
        extra = RawSMTP(gw.smtp_addr, greeting=False)
        self.addCleanup(extra.close)
        r = extra.reply()
        assert_reply(self, r, 421, '4.7.0', '4th session from one address')
        self.assertIn('from your address', r.text)
        self.assertTrue(extra.wait_closed(5), 'not closed after 421')
        other = RawSMTP(gw.smtp_addr, source='127.0.0.2')
        self.addCleanup(other.close)
        self.assertEqual(other.greeting.code, 220, 'another client must be served: %r' % other.greeting)
        self.assertIn('client=127.0.0.1 reply="421 4.7.0', gw.read_log('smtpd'))
        assert_reply(self, conns[0].cmd('QUIT'), 221)
        conns[0].wait_closed(5)

        def slot_free():
            c = RawSMTP(gw.smtp_addr, greeting=False)
            try:
                return c.reply().code == 220
            finally:
                c.close()
        harness.wait_until(slot_free, 5, 'a slot for 127.0.0.1 after QUIT', interval=0.2)

    def test_command_deadline(self):
        """command_deadline=3: a command trickling in byte by byte is cut with 421 4.4.2 (idle_timeout is not restarted by bytes)"""
        gw = gateway(self, 'lim-cmd', idle_timeout=60, command_deadline=3)
        c = session(self, gw)
        t0 = time.monotonic()
        closed = None
        for b in b'NOOP' + b'x' * 40:
            try:
                c.send(bytes([b]))
            except OSError:
                break
            if not c.nothing_more(0.5):
                closed = c.reply()
                break
        waited = time.monotonic() - t0
        self.assertIsNotNone(closed, 'a line trickling in for %.0fs was never cut' % waited)
        assert_reply(self, closed, 421, '4.4.2', 'command deadline')
        self.assertIn('Command deadline', closed.text)
        self.assertTrue(c.wait_closed(5), 'not closed after the 421')
        self.assertIn('event=deadline', gw.read_log('smtpd'))
        self.assertIn('kind=command', gw.read_log('smtpd'))
        # Whole commands, each well within the deadline, keep a session alive.
        c2 = session(self, gw)
        for i in range(4):
            time.sleep(1)
            assert_reply(self, c2.cmd('NOOP'), 250, what='NOOP %d' % i)
        # A message that arrives line by line is not cut either.
        assert_reply(self, c2.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c2.cmd('RCPT TO:<slow@localhost>'), 250)
        assert_reply(self, c2.cmd('DATA'), 354)
        for i in range(4):
            c2.send(b'line %d\r\n' % i)
            time.sleep(1)
        assert_reply(self, c2.cmd('.'), 250, '2.0.0', 'slow but steady message')

    def test_session_deadline(self):
        """session_deadline=3: a session of busy NOOPs is cut with 421 4.4.2 after 3 s"""
        gw = gateway(self, 'lim-sessdl', session_deadline=3)
        c = session(self, gw)
        final = None
        for i in range(40):
            r = c.cmd('NOOP')
            if r.code != 250:
                final = r
                break
            if not c.nothing_more(0.25):
                final = c.reply()
                break
        self.assertIsNotNone(final, 'session never cut')
        assert_reply(self, final, 421, '4.4.2', 'session deadline')
        self.assertIn('Session deadline', final.text)
        self.assertTrue(c.wait_closed(5), 'not closed after the 421')
        self.assertIn('kind=session', gw.read_log('smtpd'))

    def test_out_of_descriptors(self):
        """RLIMIT_NOFILE=40: once descriptors run out the next client gets 421 4.3.2 at once; served again after others close"""
        gw = harness.Instance('lim-nofile')
        self.addCleanup(gw.cleanup)
        gw.start_smtpd(nofile=40)
        conns = []
        refused = None
        for i in range(60):
            c = RawSMTP(gw.smtp_addr, timeout=5, greeting=False)
            self.addCleanup(c.close)
            r = c.reply()		# within 5 s: never left in the backlog
            if r.code == 421:
                refused = (i, r, c)
                break
            self.assertEqual(r.code, 220, 'connection %d: %r' % (i, r))
            conns.append(c)
        self.assertIsNotNone(refused, '60 sessions under RLIMIT_NOFILE=40 and no 421')
        i, r, c = refused
        assert_reply(self, r, 421, '4.3.2', 'connection %d, out of descriptors' % i)
        self.assertTrue(c.wait_closed(5), 'not closed after 421 4.3.2')
        log('  421 4.3.2 after %d sessions' % i)
        # More clients while still out: each is answered, none waits.
        for j in range(3):
            more = RawSMTP(gw.smtp_addr, timeout=5, greeting=False)
            self.addCleanup(more.close)
            assert_reply(self, more.reply(), 421, '4.3.2', 'further client %d' % j)
        self.assertIn('event=out-of-descriptors', gw.read_log('smtpd'))
        # The sessions in place still work.
        assert_reply(self, conns[0].cmd('NOOP'), 250, what='a session in place')
        for c in conns[:5]:
            c.cmd('QUIT')
            c.wait_closed(5)

        def served():
            c = RawSMTP(gw.smtp_addr, timeout=5, greeting=False)
            try:
                return c.reply().code == 220
            finally:
                c.close()
        harness.wait_until(served, 10, 'a greeting once descriptors are free', interval=0.2)
        self.assertTrue(gw.running('smtpd'), 'smtpd died')

    def test_idle_timeout(self):
        """idle_timeout=2: an idle session gets 421 4.4.2 and is closed"""
        gw = gateway(self, 'lim-idle', idle_timeout=2)
        c = session(self, gw)
        t0 = time.monotonic()
        r = c.reply(timeout=8)
        waited = time.monotonic() - t0
        assert_reply(self, r, 421, '4.4.2', 'idle session')
        self.assertGreaterEqual(waited, 1.5, 'closed too early (%.1fs)' % waited)
        self.assertTrue(c.wait_closed(5), 'not closed after the 421')
        log('  idle 421 after %.1fs' % waited)

    def test_max_errors(self):
        """max_errors=5: after 5 error replies the session gets 421 4.7.0 and is closed"""
        gw = gateway(self, 'lim-err', max_errors=5)
        c = session(self, gw)
        errors = 0
        final = None
        for i in range(7):
            try:
                r = c.cmd('BOGUS%d' % i)
            except EOFError:
                break
            if r.code == 421:
                final = r
                break
            assert_reply(self, r, 500, '5.5.1', 'bad command %d' % i)
            errors += 1
            if errors == 5:
                # The 421 may follow the 5th error reply at once.
                if not c.nothing_more(1.0):
                    final = c.reply()
                    break
        self.assertIsNotNone(final, 'no 421 after %d errors' % errors)
        assert_reply(self, final, 421, '4.7.0', 'too many errors')
        self.assertIn(errors, (4, 5), 'errors before the 421: %d' % errors)
        self.assertTrue(c.wait_closed(5), 'not closed after 421')

    def test_max_hops(self):
        """max_hops=5: 6 Received: headers -> 554 5.4.6, nothing stored; 4 are fine"""
        gw = gateway(self, 'lim-hops', max_hops=5)
        c = session(self, gw)

        def send(nhops, body_received=0):
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
            assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
            assert_reply(self, c.cmd('DATA'), 354)
            hdr = b''.join(b'%s: from hop%d by x; Mon, 1 Dec 2025 00:00:00 +0000\r\n'
                           % (b'received' if i % 2 else b'Received', i) for i in range(nhops))
            body = b''.join(b'Received: in the body %d\r\n' % i for i in range(body_received))
            c.send(hdr + b'Subject: hops\r\n\r\n' + body + b'.\r\n')
            return c.reply()
        r = send(6)
        assert_reply(self, r, 554, '5.4.6', '6 Received headers')
        self.assertEqual(stored_anything(gw), [], 'files left after a refused message')
        r = send(4, body_received=10)
        assert_reply(self, r, 250, '2.0.0', '4 Received headers (+10 in the body)')

    def test_file_size_limit(self):
        """smtpd under ulimit -f of 256 KiB: a 1 MB message -> 552 5.3.4, smtpd lives, no partial file"""
        gw = harness.Instance('lim-fsize')
        self.addCleanup(gw.cleanup)
        gw.start_smtpd(fsize=256 << 10)
        c = session(self, gw)
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        line = b'f' * 1022 + b'\r\n'
        c.send(b'Subject: past the file size limit\r\n\r\n' + line * 1024 + b'.\r\n')
        # EFBIG from write(2), not a SIGXFSZ that kills the daemon
        assert_reply(self, c.reply(timeout=30), 552, '5.3.4', '1 MB message under ulimit -f 256')
        self.assertIsNone(gw.procs['smtpd'].poll(), 'spoolgate-smtpd died')
        self.assertEqual(list(stored_anything(gw)), [], 'partial files after EFBIG')
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        r = c.cmd('Subject: small\r\n\r\nfits\r\n.')
        assert_reply(self, r, 250, '2.0.0', 'small message after EFBIG')

    def test_full_disk(self):
        """spool on a 1 MB tmpfs: a 2 MB message -> 452 4.3.1, never 250, no partial file"""
        gw = harness.Instance('lim-disk')
        self.addCleanup(gw.cleanup)
        why = gw.mount_tmpfs_spool('1m')
        if why:
            self.skipTest(why)
        gw.start_smtpd()
        c = session(self, gw)
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<someone@example.net>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        line = b'f' * 1022 + b'\r\n'
        c.send(b'Subject: full disk\r\n\r\n' + line * 2048 + b'.\r\n')
        r = c.reply(timeout=30)
        assert_reply(self, r, 452, '4.3.1', '2 MB message on a 1 MB spool')
        left = [f for f in stored_anything(gw)]
        self.assertEqual(left, [], 'partial files after ENOSPC')
        # The space is free again: a small message goes through.
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        r = c.cmd('Subject: small\r\n\r\nfits\r\n.')
        assert_reply(self, r, 250, '2.0.0', 'small message after ENOSPC')
        name = gw.find_mail('bob', queued_id(r.text))
        self.assertIsNotNone(name)
        self.assertEqual(split_stored(gw.read_mail('bob', name))[2], b'Subject: small\n\nfits\n')


if __name__ == '__main__':
    harness.main()
