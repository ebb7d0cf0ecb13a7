#!/usr/bin/python3
"""test_odmr - On-Demand Mail Relay (RFC 2645): ATRN turns the connection around.

A listener with odmr = yes; users made by the real spoolgate-passwd; [odmr]
says which user may take which domain; the domains are held by [routes]
hold.  After AUTH, "ATRN domain" answers 250 and the gateway becomes the
SMTP client on the same connection: the client greets with 220 and takes
the held mail, each record going to sent/ (a message the client refuses
for now stays queued).  Rows with code and enhanced code: 250 2.0.0,
450 4.7.0, 451 4.4.0, 453 4.7.0, 530 5.7.0, 501 5.5.4, 502 5.5.1.
The real client is fetchmail --protocol ODMR: its ODMR mode authenticates
with CRAM-MD5 only, so a third listener opts in (auth_cram_md5 = yes) and
its user was added with spoolgate-passwd --cram-md5; fetchmail relays the
turned connection to an aiosmtpd sink (smtphost).  A wrong secret gets 535
and fetchmail fails; where auth_cram_md5 is off CRAM-MD5 is neither
offered nor accepted (504 5.5.4).  A byte relay in the test plays the same
client side too.  Needs no FUSE.
"""

import base64
import os
import shutil
import socket
import ssl
import smtplib
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
import peers
from harness import assert_reply, log, wait_until
from test_auth import make_users
from test_relay import start_sink_for

USERS = {
    'branch@example.org': ('branch pass phrase', []),
    'other@example.org': ('other pass phrase', []),
    'tls@example.org': ('tls pass phrase', []),
    'fetch@example.org': ('fetch pass phrase', ['--cram-md5']),
}


def plain(user, password):
    return base64.b64encode(b'\0' + user.encode() + b'\0' + password.encode()).decode()


def send(gw, rcpts, tok):
    with smtplib.SMTP(*gw.smtp_addr, timeout=10) as c:
        c.sendmail('alice@localhost', rcpts, 'Subject: odmr %s\r\n\r\nbody token-%s\r\n' % (tok, tok))


class Odmr(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        start_sink_for(cls)
        cls.gw = harness.Instance(
            'odmr', scan_interval=1, retry_min=3600, retry_max=3600, command_timeout=10,
            routes={'branch.test': 'hold', 'second.test': 'hold', 'other.test': 'hold', 'fetch.test': 'hold',
                    'fetch2.test': 'hold'},
            odmr={'branch@example.org': 'branch.test second.test empty.test',
                  'other@example.org': 'other.test',
                  'fetch@example.org': 'fetch.test fetch2.test'},
            listeners={'main': {'listen': '127.0.0.1:%d' % harness.free_port()},
                       'odmr': {'listen': '127.0.0.1:%d' % harness.free_port(), 'odmr': True,
                                'auth': 'offer', 'auth_plaintext': True},
                       'odmrcram': {'listen': '127.0.0.1:%d' % harness.free_port(), 'odmr': True,
                                    'auth': 'required', 'auth_cram_md5': True},
                       'odmrmin': {'listen': '127.0.0.1:%d' % harness.free_port(), 'odmr': True,
                                   'auth': 'required', 'auth_cram_md5': True, 'auth_plaintext': True,
                                   'auth_min_mechanism': 'PLAIN'}},
            listen=None, relay_networks='127.0.0.0/8', auth_failure_delay=0)
        cls.addClassCleanup(cls.gw.cleanup)
        # a second ODMR listener with STARTTLS, as port 366 is run in practice
        cls.ca = peers.TestCA(os.path.join(cls.gw.dir, 'ca'))
        cls.cert, cls.key = cls.ca.issue('odmr', dns=['odmr.test'], ips=['127.0.0.1'])
        if harness.IS_ROOT:
            import pwd
            pw = pwd.getpwnam(harness.USER)
            os.chown(cls.cert, pw.pw_uid, pw.pw_gid)
            os.chown(cls.key, pw.pw_uid, pw.pw_gid)
        cls.gw.cfg['listeners']['odmrtls'] = {'listen': '127.0.0.1:%d' % harness.free_port(), 'odmr': True,
                                              'auth': 'required', 'tls': 'encrypt',
                                              'tls_cert_file': cls.cert, 'tls_key_file': cls.key}
        cls.gw.cfg['routes']['tls.test'] = 'hold'
        cls.gw.cfg['odmr']['tls@example.org'] = 'tls.test'
        cls.gw.users = os.path.join(cls.gw.dir, 'users')
        make_users(cls.gw.users, cls.gw.cfg.get('user'), USERS)
        cls.gw.cfg['auth_users'] = cls.gw.users
        cls.gw.write_config()
        cls.gw.start_smtpd()
        cls.gw.port = cls.gw.listener_addr('main')[1]

    def client(self, user=None, listener='odmr'):
        c = harness.RawSMTP(self.gw.listener_addr(listener))
        self.addCleanup(c.close)
        assert_reply(self, c.ehlo(), 250, what='EHLO')
        if user:
            r = c.cmd('AUTH PLAIN ' + plain(user, USERS[user][0]))
            assert_reply(self, r, 235, what='AUTH')
        return c

    def queued_for(self, domain):
        out = []
        for name in self.gw.listdir('queue') + self.gw.listdir('active'):
            if name.startswith('.'):
                continue
            try:
                with open(self.gw.path('queue', name)) as f:
                    rec = harness.parse_record(f.read())
            except FileNotFoundError:
                continue
            if any(st == 'pending' and a.endswith('@' + domain) for st, a, _ in rec['rcpt']):
                out.append(name)
        return out

    def serve_reversed(self, c, refuse=()):
        """Play the SMTP server on the turned connection c: 220, EHLO, then
        transactions until QUIT.  Returns the messages (rcpts, data)."""
        got = []
        c.send(b'220 client.test ESMTP ready for you\r\n')
        rcpts, data, in_data = [], [], False
        while True:
            line = c._line(15)
            if in_data:
                if line == '.':
                    if any(r in refuse for r in rcpts):
                        c.send(b'451 4.3.0 not now\r\n')
                    else:
                        got.append((rcpts, '\n'.join(data)))
                        c.send(b'250 2.0.0 taken\r\n')
                    rcpts, data, in_data = [], [], False
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb == 'EHLO':
                c.send(b'250-client.test\r\n250 8BITMIME\r\n')
            elif verb == 'MAIL':
                rcpts = []
                c.send(b'250 2.1.0 ok\r\n')
            elif verb == 'RCPT':
                rcpts.append(line.split('<', 1)[1].rstrip('>'))
                c.send(b'250 2.1.5 ok\r\n')
            elif verb == 'DATA':
                in_data = True
                c.send(b'354 go\r\n')
            elif verb == 'RSET':
                c.send(b'250 2.0.0 ok\r\n')
            elif verb == 'QUIT':
                c.send(b'221 2.0.0 bye\r\n')
                return got
            else:
                c.send(b'500 5.5.1 what\r\n')

    def test_atrn_reverses_and_delivers(self):
        """ATRN after AUTH: 250 2.0.0, the client's 220, the held mail of its domains over the same
        connection, each record in sent/, a refused one stays queued, QUIT at the end"""
        toks = [uuid.uuid4().hex[:12] for _ in range(3)]
        send(self.gw, ['a@branch.test'], toks[0])
        send(self.gw, ['b@branch.test'], toks[1])
        send(self.gw, ['keep@second.test'], toks[2])
        wait_until(lambda: len(self.queued_for('branch.test')) == 2 and self.queued_for('second.test'), 5,
                   'queued')
        time.sleep(1.5)
        self.assertEqual(len(self.queued_for('branch.test')), 2, 'held mail went without ATRN')
        sent_before = len(self.gw.listdir('sent'))
        c = self.client('branch@example.org')
        r = c.cmd('ATRN branch.test,second.test')
        assert_reply(self, r, 250, '2.0.0', 'ATRN')
        self.assertIn('OK, now reversing the connection', r.text)
        got = self.serve_reversed(c, refuse=('keep@second.test',))
        bodies = [d for _, d in got]
        self.assertEqual(sorted(r for rc, _ in got for r in rc), ['a@branch.test', 'b@branch.test'])
        for t in toks[:2]:
            self.assertTrue(any('token-' + t in b for b in bodies), t)
        wait_until(lambda: len(self.gw.listdir('sent')) == sent_before + 2, 10, 'two records in sent/')
        for name in self.gw.listdir('sent'):
            with open(self.gw.path('sent', name)) as f:
                rec = harness.parse_record(f.read())
            if any(a.endswith('@branch.test') for _, a, _ in rec['rcpt']):
                self.assertRegex(rec.get('last-host', ''), r'^odmr:\d+$', rec)
                self.assertTrue(rec['last-reply'].startswith('250 2.0.0 taken'), rec)
        wait_until(lambda: not [n for n in self.gw.listdir('active') if not n.startswith('.')]
                   and not self.gw.parked_claims(), 10, 'claims finished')
        self.assertEqual(len(self.queued_for('second.test')), 1, 'the refused message left the queue')
        self.assertFalse(self.queued_for('branch.test'))
        log_text = self.gw.read_log('smtpd')
        self.assertRegex(log_text, r'event=odmr-start odmr=\d+ domains=2 released=3')
        wait_until(lambda: 'event=odmr-end' in self.gw.read_log('smtpd'), 10, 'odmr-end')

    def test_atrn_inside_tls(self):
        """STARTTLS, AUTH, ATRN: the turned connection stays inside that TLS session (the gateway
        says no second STARTTLS), and the held mail arrives through it"""
        tok = uuid.uuid4().hex[:12]
        send(self.gw, ['t@tls.test'], tok)
        wait_until(lambda: self.queued_for('tls.test'), 5, 'queued')
        c = harness.RawSMTP(self.gw.listener_addr('odmrtls'))
        self.addCleanup(c.close)
        assert_reply(self, c.ehlo(), 250, what='EHLO')
        assert_reply(self, c.cmd('ATRN tls.test'), 530, '5.7.0', 'ATRN before STARTTLS and AUTH')
        assert_reply(self, c.cmd('STARTTLS'), 220, '2.0.0', 'STARTTLS')
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        c.sock = ctx.wrap_socket(c.sock, server_hostname='odmr.test')
        assert_reply(self, c.ehlo(), 250, what='EHLO in TLS')
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain('tls@example.org', USERS['tls@example.org'][0])), 235)
        assert_reply(self, c.cmd('ATRN tls.test'), 250, '2.0.0', 'ATRN in TLS')
        got = self.serve_reversed(c)
        self.assertEqual([rc for rc, _ in got], [['t@tls.test']])
        self.assertIn('token-' + tok, got[0][1])
        self.assertTrue(c.sock.version().startswith('TLS'))
        wait_until(lambda: not self.queued_for('tls.test'), 10, 'out of the queue')

    def test_refusals(self):
        """530 5.7.0 without AUTH; 502 5.5.1 where odmr is off; 450 4.7.0 another's domain;
        453 4.7.0 nothing held; 501 5.5.4 a malformed list; 503 5.5.1 in a transaction"""
        c = self.client()
        self.assertIn('ATRN', [l.split()[0] for l in c.ehlo().lines[1:]])
        assert_reply(self, c.cmd('ATRN branch.test'), 530, '5.7.0', 'ATRN before AUTH')
        m = self.client(listener='main')
        self.assertNotIn('ATRN', [l.split()[0] for l in m.ehlo().lines[1:]])
        assert_reply(self, m.cmd('ATRN branch.test'), 502, '5.5.1', 'ATRN where odmr = no')
        c = self.client('branch@example.org')
        r = c.cmd('ATRN other.test')
        assert_reply(self, r, 450, '4.7.0', "ATRN for another user's domain")
        self.assertIn('Access denied to domain other.test', r.text)
        r = c.cmd('ATRN empty.test')
        assert_reply(self, r, 453, '4.7.0', 'ATRN with nothing held')
        self.assertIn('You have no mail', r.text)
        for arg in ('a..b', 'branch.test,', ',branch.test', 'branch.test, second.test', '[127.0.0.1]'):
            assert_reply(self, c.cmd('ATRN ' + arg), 501, '5.5.4', 'ATRN %r' % arg)
        assert_reply(self, c.cmd('MAIL FROM:<branch@example.org>'), 250)
        assert_reply(self, c.cmd('ATRN branch.test'), 503, '5.5.1', 'ATRN in a transaction')

    def test_451_domain_taken_by_another_session(self):
        """a session that turned the connection holds its domains: a second ATRN for one gets 451 4.4.0"""
        tok = uuid.uuid4().hex[:12]
        send(self.gw, ['x@other.test'], tok)
        wait_until(lambda: self.queued_for('other.test'), 5, 'queued')
        first = self.client('other@example.org')
        assert_reply(self, first.cmd('ATRN'), 250, '2.0.0', 'first ATRN (all its domains)')
        # the first client does not greet yet: the domain stays taken
        second = self.client('other@example.org')
        r = second.cmd('ATRN other.test')
        assert_reply(self, r, 451, '4.4.0', 'second ATRN')
        self.assertIn('Unable to process ATRN request now', r.text)
        got = self.serve_reversed(first)
        self.assertEqual([rc for rc, _ in got], [['x@other.test']])

    def test_bridge_to_a_real_smtp_server(self):
        """the client's side as fetchmail's ODMR mode does it: AUTH, ATRN, then every byte relayed
        between the turned connection and a real SMTP server (aiosmtpd), which gets the held mail"""
        toks = [uuid.uuid4().hex[:12] for _ in range(2)]
        send(self.gw, ['f1@branch.test'], toks[0])
        send(self.gw, ['f2@branch.test'], toks[1])
        wait_until(lambda: len(self.queued_for('branch.test')) == 2, 5, 'queued')
        c = self.client('branch@example.org')
        assert_reply(self, c.cmd('ATRN branch.test'), 250, '2.0.0', 'ATRN')
        sink = socket.create_connection(('127.0.0.1', self.sink.port), timeout=20)
        self.addCleanup(sink.close)
        gw = c.sock
        gw.settimeout(20)

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threads = [threading.Thread(target=pump, args=(gw, sink), daemon=True),
                   threading.Thread(target=pump, args=(sink, gw), daemon=True)]
        for t in threads:
            t.start()
        wait_until(lambda: self.sink.find(toks[0]) and self.sink.find(toks[1]), 20, 'both in the sink')
        for t in threads:
            t.join(20)
        self.assertEqual(sorted(m['rcpt'][0] for t in toks for m in self.sink.find(t)),
                         ['f1@branch.test', 'f2@branch.test'])
        wait_until(lambda: not self.queued_for('branch.test'), 10, 'out of the queue')

    def fetchmail(self, listener, secret, domains='fetch.test fetch2.test'):
        """fetchmail --protocol ODMR against listener, relaying into the sink: (exit code, output)"""
        fm = shutil.which('fetchmail')
        if fm is None:
            self.skipTest('fetchmail is not installed (scripts/deps.sh)')
        home = os.path.join(self.gw.dir, 'fetchmail-' + uuid.uuid4().hex[:8])
        os.makedirs(home)
        rc = os.path.join(home, 'fetchmailrc')
        fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)	# fetchmail refuses any other mode
        with os.fdopen(fd, 'w') as f:
            f.write('poll 127.0.0.1 protocol ODMR port %d\n'
                    '  user "fetch@example.org" password "%s"\n'
                    '  fetchdomains %s smtphost "127.0.0.1/%d"\n'
                    % (self.gw.listener_addr(listener)[1], secret, ','.join(domains.split()), self.sink.port))
        env = dict(os.environ, FETCHMAILHOME=home, HOME=home)
        p = subprocess.run([fm, '-f', rc, '-N', '--nosyslog', '--verbose'],
                           capture_output=True, text=True, timeout=90, env=env)
        out = p.stdout + p.stderr
        log('  fetchmail exit %d:\n%s' % (p.returncode, '\n'.join('    ' + l for l in out.splitlines())))
        return p.returncode, out

    def test_fetchmail_odmr(self):
        """fetchmail --protocol ODMR as the client: AUTH CRAM-MD5 on the listener that opts in, ATRN,
        the held mail of both its domains into the SMTP sink fetchmail relays to, records in sent/"""
        toks = [uuid.uuid4().hex[:12] for _ in range(3)]
        send(self.gw, ['m1@fetch.test'], toks[0])
        send(self.gw, ['m2@fetch.test', 'm3@fetch2.test'], toks[1])
        send(self.gw, ['m4@fetch2.test'], toks[2])
        wait_until(lambda: len(self.queued_for('fetch.test')) == 2 and len(self.queued_for('fetch2.test')) == 2,
                   5, 'queued')
        sent_before = len(self.gw.listdir('sent'))
        c = self.client(listener='odmrcram')
        self.assertIn('CRAM-MD5', c.ehlo().text, 'CRAM-MD5 offered where auth_cram_md5 = yes')
        code, out = self.fetchmail('odmrcram', USERS['fetch@example.org'][0])
        self.assertIn('AUTH CRAM-MD5', out)
        self.assertRegex(out, r'235 2\.7\.0')
        self.assertIn('ATRN fetch.test,fetch2.test', out)
        self.assertIn('250 2.0.0 OK, now reversing the connection', out)
        self.assertEqual(code, 0, out)
        wait_until(lambda: all(self.sink.find(t) for t in toks), 20, 'all three in the sink')
        self.assertEqual(sorted(r for t in toks for m in self.sink.find(t) for r in m['rcpt']),
                         ['m1@fetch.test', 'm2@fetch.test', 'm3@fetch2.test', 'm4@fetch2.test'])
        wait_until(lambda: not self.queued_for('fetch.test') and not self.queued_for('fetch2.test'), 10,
                   'out of the queue')
        wait_until(lambda: len(self.gw.listdir('sent')) == sent_before + 3, 10, 'three records in sent/')
        log_text = self.gw.read_log('smtpd')
        self.assertRegex(log_text, r'mechanism=CRAM-MD5')
        self.assertNotIn(USERS['fetch@example.org'][0], log_text, 'the secret went into the log')

    def test_fetchmail_wrong_secret_and_listener_without_cram(self):
        """a wrong secret: 535 5.7.8 and fetchmail fails, nothing leaves the queue; on a listener
        without auth_cram_md5 CRAM-MD5 is not in EHLO, AUTH CRAM-MD5 gets 504 5.5.4, fetchmail fails;
        below auth_min_mechanism it gets 534 5.7.9"""
        tok = uuid.uuid4().hex[:12]
        send(self.gw, ['w@fetch2.test'], tok)
        wait_until(lambda: self.queued_for('fetch2.test'), 5, 'queued')
        code, out = self.fetchmail('odmrcram', 'not the secret', domains='fetch2.test')
        self.assertIn('535 5.7.8', out)
        self.assertNotEqual(code, 0, out)
        self.assertNotIn('ATRN', [l.split(' ')[0] for l in out.splitlines() if l.startswith('fetchmail: ODMR> ')])
        c = self.client(listener='odmr')
        self.assertNotIn('CRAM-MD5', c.ehlo().text)
        assert_reply(self, c.cmd('AUTH CRAM-MD5'), 504, '5.5.4', 'AUTH CRAM-MD5 where auth_cram_md5 = no')
        code, out = self.fetchmail('odmr', USERS['fetch@example.org'][0], domains='fetch2.test')
        self.assertNotEqual(code, 0, out)
        self.assertNotIn('235 ', out)
        # the weakest mechanism: any auth_min_mechanism refuses it (534 5.7.9)
        c = self.client(listener='odmrmin')
        self.assertNotIn('CRAM-MD5', c.ehlo().text)
        assert_reply(self, c.cmd('AUTH CRAM-MD5'), 534, '5.7.9', 'AUTH CRAM-MD5 below auth_min_mechanism')
        time.sleep(1)
        self.assertTrue(self.queued_for('fetch2.test'), 'the held mail left without a good ATRN')
        self.assertFalse(self.sink.find(tok))


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD,))
