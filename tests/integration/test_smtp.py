#!/usr/bin/python3
"""test_smtp - the SMTP dialogue of spoolgate-smtpd with real clients.

Greeting, EHLO capabilities, delivery with smtplib and swaks into the
Maildir (Return-Path, Received, body intact with LF endings, 250 only once
the file is there), every command and its reply code, relay denial,
unknown mailboxes, bad addresses, the null sender, SIZE and unknown MAIL
parameters, configuration check (-n) and a clean SIGTERM shutdown.
"""

import email.utils
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, log, queued_id, split_stored

MAX_SIZE = 5000000


class SmtpDialogue(unittest.TestCase):
    """One gateway with the default policy (loopback may relay, any mailbox)."""

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('smtp', max_message_size=MAX_SIZE)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def raw(self):
        c = RawSMTP(self.gw.smtp_addr)
        self.addCleanup(c.close)
        return c

    def check_stored(self, msgid, sender, rcpt, content, helo):
        """The message msgid is in mail/bob/new with our headers and content."""
        name = self.gw.find_mail('bob', msgid)
        self.assertIsNotNone(name, 'no file %s.<host> in mail/bob/new right after the 250 '
                             '(have %s)' % (msgid, self.gw.mailbox_new('bob')))
        data = self.gw.read_mail('bob', name)
        rp, received, stored = split_stored(data)
        self.assertEqual(rp, b'Return-Path: <%s>' % sender.encode())
        rtext = received.decode()
        self.assertTrue(rtext.startswith('Received: from %s ' % helo), rtext)
        self.assertIn('[127.0.0.1]', rtext)
        self.assertIn('with ESMTP', rtext)
        self.assertIn('id %s' % msgid, rtext)
        self.assertIn('<%s>' % rcpt, rtext)
        date = rtext.rsplit(';', 1)[1].strip()
        self.assertIsNotNone(email.utils.parsedate_to_datetime(date),
                             'Received date not RFC 5322: %r' % date)
        self.assertNotIn(b'\r', stored, 'stored message must use LF line endings')
        self.assertEqual(stored, content)
        log('  stored %s: %d bytes, Return-Path/Received ok, content exact' % (name, len(data)))

    # ---------------------------------------------------------- greeting, EHLO

    def test_greeting_and_ehlo(self):
        """greeting 220; EHLO lists PIPELINING, SIZE n, 8BITMIME, ENHANCEDSTATUSCODES"""
        c = self.raw()
        self.assertEqual(c.greeting.code, 220, c.greeting)
        self.assertIn('spoolgate ESMTP', c.greeting.text)
        r = c.ehlo()
        caps = [l.upper() for l in r.lines[1:]]
        for cap in ('PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES'):
            self.assertIn(cap, caps, 'EHLO does not announce %s: %r' % (cap, r))
        self.assertIn('SIZE %d' % MAX_SIZE, caps, 'EHLO must announce SIZE %d: %r' % (MAX_SIZE, r))
        r = c.cmd('HELO client.example')
        assert_reply(self, r, 250, what='HELO')
        assert_reply(self, c.cmd('QUIT'), 221, what='QUIT')
        self.assertTrue(c.wait_closed(5), 'connection not closed after QUIT')

    # ---------------------------------------------------------- delivery

    def test_send_smtplib(self):
        """smtplib: message to bob@localhost stored in mail/bob/new with headers, LF endings"""
        msg = ('From: Alice <alice@example.org>\r\nTo: bob@localhost\r\n'
               'Subject: smtplib test\r\n\r\nline one\r\n\r\n  indented line\r\nlast line\r\n')
        with smtplib.SMTP('127.0.0.1', self.gw.port, local_hostname='client.example',
                          timeout=15) as s:
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            self.assertIn('pipelining', s.esmtp_features)
            self.assertEqual(s.esmtp_features.get('size'), str(MAX_SIZE))
            code, text = s.mail('alice@example.org', ['SIZE=%d' % len(msg)])
            self.assertEqual(code, 250, text)
            self.assertTrue(text.startswith(b'2.1.0'), text)
            code, text = s.rcpt('bob@localhost')
            self.assertEqual(code, 250, text)
            self.assertTrue(text.startswith(b'2.1.5'), text)
            code, text = s.data(msg.encode())
            self.assertEqual(code, 250, text)
            self.assertTrue(text.startswith(b'2.0.0'), text)
            msgid = queued_id(text)
        self.check_stored(msgid, 'alice@example.org', 'bob@localhost',
                          msg.replace('\r\n', '\n').encode(), 'client.example')

    def test_send_swaks(self):
        """swaks: message to bob@localhost stored intact"""
        if shutil.which('swaks') is None:
            self.skipTest('swaks is not installed')
        r = subprocess.run(['swaks', '--server', '127.0.0.1', '--port', str(self.gw.port),
                            '--helo', 'swaks.example', '--from', 'carol@example.org',
                            '--to', 'bob@localhost', '--header', 'Subject: swaks test',
                            '--body', 'swaks body line\nsecond line', '--timeout', '15'],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, 'swaks failed:\n' + r.stdout + r.stderr)
        m = re.search(r'<[-~]\s+250[ -]2\.0\.0 .*queued as (\S+)', r.stdout)
        self.assertIsNotNone(m, 'no 250 queued as in swaks output:\n' + r.stdout)
        msgid = m.group(1)
        name = self.gw.find_mail('bob', msgid)
        self.assertIsNotNone(name, 'swaks message %s not in mail/bob/new' % msgid)
        rp, received, stored = split_stored(self.gw.read_mail('bob', name))
        self.assertEqual(rp, b'Return-Path: <carol@example.org>')
        self.assertIn(b'from swaks.example ', received)
        self.assertIn(b'\nSubject: swaks test\n', b'\n' + stored)
        self.assertIn(b'\n\nswaks body line\nsecond line\n', stored)
        self.assertNotIn(b'\r', stored)
        log('  swaks message %s stored' % msgid)

    def test_null_sender(self):
        """MAIL FROM:<> is accepted and stored with Return-Path: <>"""
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<>'), 250, '2.1.0', 'MAIL FROM:<>')
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250, '2.1.5', 'RCPT')
        assert_reply(self, c.cmd('DATA'), 354, what='DATA')
        r = c.cmd(b'Subject: bounce\r\n\r\nnull sender\r\n.')
        assert_reply(self, r, 250, '2.0.0', 'end of data')
        self.check_stored(queued_id(r.text), '', 'bob@localhost',
                          b'Subject: bounce\n\nnull sender\n', 'client.example')

    def test_duplicate_recipient_delivered_once(self):
        """the same recipient twice is accepted and delivered once"""
        c = self.raw()
        c.ehlo()
        before = set(self.gw.mailbox_new('bob'))
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<BOB@LOCALHOST>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        r = c.cmd('Subject: dup\r\n\r\ndup\r\n.')
        assert_reply(self, r, 250, '2.0.0')
        new = set(self.gw.mailbox_new('bob')) - before
        self.assertEqual(len(new), 1, 'expected one copy, got %s' % sorted(new))

    def test_relay_allowed_from_relay_networks(self):
        """a client in relay_networks may give a remote recipient (250)"""
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<someone@example.net>'), 250, '2.1.5', 'remote RCPT')
        assert_reply(self, c.cmd('RSET'), 250, what='RSET')

    # ---------------------------------------------------------- commands

    def test_commands(self):
        """NOOP 250, HELP 214, VRFY 252, EXPN 502, unknown 500 5.5.1, RSET, QUIT 221"""
        c = self.raw()
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 503, '5.5.1', 'MAIL before EHLO')
        c.ehlo()
        assert_reply(self, c.cmd('NOOP'), 250, what='NOOP')
        assert_reply(self, c.cmd('NOOP with an argument'), 250, what='NOOP arg')
        r = c.cmd('HELP')
        assert_reply(self, r, 214, what='HELP')
        assert_reply(self, c.cmd('VRFY bob'), 252, '2.5.0', 'VRFY')
        assert_reply(self, c.cmd('EXPN staff'), 502, '5.5.1', 'EXPN')
        assert_reply(self, c.cmd('FROB'), 500, '5.5.1', 'unknown verb')
        assert_reply(self, c.cmd('noop'), 250, what='lower-case verb')
        assert_reply(self, c.cmd('RSET extra'), 501, '5.5.4', 'RSET with argument')
        # RSET ends a transaction: RCPT afterwards is out of sequence.
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RSET'), 250, what='RSET')
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 503, '5.5.1', 'RCPT after RSET')
        assert_reply(self, c.cmd('QUIT now'), 501, '5.5.4', 'QUIT with argument')
        assert_reply(self, c.cmd('QUIT'), 221, what='QUIT')
        self.assertTrue(c.wait_closed(5), 'connection not closed after QUIT')

    def test_sequence_errors(self):
        """RCPT before MAIL 503 5.5.1, DATA before RCPT 503, MAIL twice 503, DATA arg 501"""
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 503, '5.5.1', 'RCPT before MAIL')
        assert_reply(self, c.cmd('DATA'), 503, '5.5.1', 'DATA before MAIL')
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('DATA'), 503, '5.5.1', 'DATA before RCPT')
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 503, '5.5.1', 'MAIL inside a transaction')
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, c.cmd('DATA now'), 501, '5.5.4', 'DATA with argument')
        # The transaction survived the errors.
        assert_reply(self, c.cmd('DATA'), 354, what='DATA')
        assert_reply(self, c.cmd('Subject: x\r\n\r\nok\r\n.'), 250, '2.0.0')

    def test_helo_names(self):
        """HELO/EHLO take a domain or address literal only (501 5.5.4); Received: shows the name as given"""
        c = self.raw()
        for bad in ('x(by', '<a>', ';', 'a;b', 'host_name', '[1.2.3.4'):
            for verb in ('EHLO', 'HELO'):
                assert_reply(self, c.cmd('%s %s' % (verb, bad)), 501, '5.5.4', '%s %s' % (verb, bad))
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 503, '5.5.1', 'MAIL after refused EHLO')
        for good in ('[127.0.0.1]', '[IPv6:::1]', 'client.example'):
            c.ehlo(good)
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<helo@localhost>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        r = c.cmd('Subject: helo\r\n\r\nhi\r\n.')
        assert_reply(self, r, 250, '2.0.0')
        name = self.gw.find_mail('helo', queued_id(r.text))
        _, received, _ = split_stored(self.gw.read_mail('helo', name))
        self.assertTrue(received.startswith(b'Received: from client.example (unknown [127.0.0.1])'),
                        received)

    def test_ehlo_resets_transaction(self):
        """EHLO in the middle of a transaction resets it: DATA afterwards is 503"""
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
        c.ehlo('again.example')
        assert_reply(self, c.cmd('DATA'), 503, '5.5.1', 'DATA after EHLO reset')

    def test_pipelined_errors_in_order(self):
        """pipelined MAIL, bad RCPT, good RCPT, DATA: replies 250 553 250 354 in order"""
        c = self.raw()
        c.ehlo()
        c.send(b'MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@@localhost>\r\n'
               b'RCPT TO:<bob@localhost>\r\nDATA\r\n')
        codes = [r.code for r in c.replies(4)]
        self.assertEqual(codes, [250, 553, 250, 354])
        assert_reply(self, c.cmd('Subject: p\r\n\r\npipelined\r\n.'), 250, '2.0.0')
        # Every RCPT refused: the pipelined DATA is refused too (RFC 2920).
        c.send(b'MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@@localhost>\r\nDATA\r\n')
        r = c.replies(3)
        self.assertEqual([x.code for x in r[:2]], [250, 553])
        self.assertIn(r[2].code, (503, 554), 'DATA without a valid recipient: %r' % r[2])
        assert_reply(self, c.cmd('NOOP'), 250, what='session goes on')

    def test_bad_addresses(self):
        """malformed recipient 553 5.1.3; sender errors carry sender codes: 553 5.1.7, 553 5.6.7; RCPT TO:<> 501 5.1.3"""
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<a@@example.org>'), 553, '5.1.7', 'malformed sender')
        assert_reply(self, c.cmd('MAIL FROM:<' + 'a' * 65 + '@example.org>'), 553, '5.1.7',
                     'sender local part over 64 octets')
        assert_reply(self, c.cmd('MAIL FROM:<j\u00f6rg@example.org>'), 553, '5.6.7',
                     'non-ASCII sender without SMTPUTF8')
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<>'), 501, '5.1.3', 'null recipient')
        assert_reply(self, c.cmd('RCPT TO:<b\u00f6b@localhost>'), 553, '5.6.7', 'non-ASCII recipient')
        for bad in ('<bob@@localhost>', '<bob@local..host>', '<"a"b@localhost>',
                    '<bob@localhost'):
            assert_reply(self, c.cmd('RCPT TO:' + bad), 553, '5.1.3', 'RCPT TO:' + bad)
        # A local part that is a valid address but no valid mailbox name.
        assert_reply(self, c.cmd('RCPT TO:<"a/b"@localhost>'), 553, '5.1.3', 'mailbox name a/b')
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250, what='good RCPT after bad ones')

    def test_mail_parameters(self):
        """SIZE over the limit 552 5.3.4; unknown parameter 555 5.5.4; BODY=8BITMIME ok"""
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org> SIZE=%d' % (MAX_SIZE + 1)),
                     552, '5.3.4', 'SIZE over the limit')
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org> FROB=1'), 555, '5.5.4',
                     'unknown parameter')
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org> SIZE=%d BODY=8BITMIME' % MAX_SIZE),
                     250, '2.1.0', 'SIZE at the limit and BODY=8BITMIME')
        assert_reply(self, c.cmd('RSET'), 250)
        assert_reply(self, c.cmd('MAIL FROM:<a@example.org> BODY=7BIT'), 250, what='BODY=7BIT')

    # ---------------------------------------------------------- shutdown

    def test_zz_sigterm(self):
        """SIGTERM: an idle session gets 421 4.3.2, the daemon exits 0 (runs last)"""
        c = self.raw()
        c.ehlo()
        self.gw.procs['smtpd'].send_signal(signal.SIGTERM)
        r = c.reply(timeout=10)
        assert_reply(self, r, 421, '4.3.2', 'idle session at shutdown')
        self.assertTrue(c.wait_closed(5), 'connection not closed after 421')
        status = self.gw.procs['smtpd'].wait(timeout=15)
        self.assertEqual(status, 0, 'smtpd exit status after SIGTERM')


class RelayDenied(unittest.TestCase):
    """relay_networks = 127.0.0.2/32: 127.0.0.1 may not relay."""

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('smtp-norelay', relay_networks='127.0.0.2/32')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def test_relay_denied(self):
        """remote recipient from outside relay_networks: 550 5.7.1; local ones still work"""
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
            assert_reply(self, c.cmd('RCPT TO:<someone@example.net>'), 550, '5.7.1', 'relay')
            assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250, what='local rcpt')
            assert_reply(self, c.cmd('RCPT TO:<postmaster>'), 250, what='postmaster')
        self.assertEqual(os.listdir(self.gw.path('queue')) if os.path.isdir(self.gw.path('queue')) else [], [])


class KnownMailboxes(unittest.TestCase):
    """mailboxes = bob alice: other local names are unknown."""

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('smtp-boxes', mailboxes='bob alice')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def test_unknown_mailbox(self):
        """unknown local user 550 5.1.1; bob, alice, postmaster accepted"""
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd('MAIL FROM:<x@example.org>'), 250)
            assert_reply(self, c.cmd('RCPT TO:<carol@localhost>'), 550, '5.1.1', 'unknown user')
            assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250, what='bob')
            assert_reply(self, c.cmd('RCPT TO:<Alice@LocalHost>'), 250, what='Alice')
            assert_reply(self, c.cmd('RCPT TO:<postmaster@localhost>'), 250, what='postmaster@')
            assert_reply(self, c.cmd('RCPT TO:<Postmaster>'), 250, what='<Postmaster>')
            assert_reply(self, c.cmd('DATA'), 354)
            r = c.cmd('Subject: to three\r\n\r\nhi\r\n.')
            assert_reply(self, r, 250, '2.0.0')
        msgid = queued_id(r.text)
        for box in ('bob', 'alice', 'postmaster'):
            self.assertIsNotNone(self.gw.find_mail(box, msgid), '%s did not get %s' % (box, msgid))
        self.assertEqual(self.gw.mailbox_files('carol'), [])


class ListenIPv6(unittest.TestCase):
    """listen = [::1]:port"""

    def test_ipv6_listener(self):
        """a [::1]:port listener greets and delivers over IPv6"""
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(('::1', 0))
                port = s.getsockname()[1]
        except OSError as e:
            self.skipTest('no IPv6 loopback: %s' % e)
        gw = harness.Instance('smtp-v6', listen='[::1]:%d' % port)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        with smtplib.SMTP('::1', port, local_hostname='v6.example', timeout=15) as s:
            s.ehlo()
            s.mail('alice@example.org')
            s.rcpt('bob@localhost')
            code, text = s.data(b'Subject: v6\r\n\r\nover IPv6\r\n')
            self.assertEqual(code, 250, text)
        name = gw.find_mail('bob', queued_id(text))
        self.assertIsNotNone(name)
        _, received, _ = split_stored(gw.read_mail('bob', name))
        self.assertIn(b'::1', received)


class Startup(unittest.TestCase):
    """The command line: -n checks the configuration; root needs a user."""

    def test_config_check(self):
        """-n: good file exits 0; a bad value exits 1 naming file, line and key"""
        gw = harness.Instance('smtp-cfg')
        self.addCleanup(gw.cleanup)
        r = subprocess.run([harness.SMTPD, '-c', gw.conf, '-n'], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        gw.cfg['max_sessions'] = 'many'
        gw.write_config()
        with open(gw.conf) as f:
            lineno = [i + 1 for i, l in enumerate(f) if l.startswith('max_sessions')][0]
        r = subprocess.run([harness.SMTPD, '-c', gw.conf, '-n'], capture_output=True,
                           text=True, timeout=30)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertIn('%s:%d' % (gw.conf, lineno), out)
        self.assertIn('max_sessions', out)

    def test_root_without_user_refuses(self):
        """as root without `user`, smtpd refuses to start"""
        if not harness.IS_ROOT:
            self.skipTest('not root')
        gw = harness.Instance('smtp-nouser', user=None)
        self.addCleanup(gw.cleanup)
        with self.assertRaises(harness.DaemonError) as cm:
            gw.start_smtpd()
        self.assertIn('exited with status', str(cm.exception))
        self.assertNotEqual(gw.procs['smtpd'].returncode, 0)


if __name__ == '__main__':
    harness.main()
