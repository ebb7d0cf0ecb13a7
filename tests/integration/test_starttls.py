#!/usr/bin/python3
"""test_starttls - the server's TLS: STARTTLS (RFC 3207) and implicit TLS (RFC 8314).

One spoolgate-smtpd with five listeners, certificates from a private test CA
(peers.TestCA, for mx.test and 127.0.0.1):

    mx          tls = may      STARTTLS offered, mail taken in plaintext too
    submission  tls = encrypt  MAIL before STARTTLS is 530 5.7.0
    submissions tls = wrapper  the handshake first, then the greeting
    plain       tls = none     no STARTTLS (502 5.5.1)
    broken      tls = may      a key that others may read: not loaded; the
                               listener takes mail in plaintext, STARTTLS 454

Real clients: openssl s_client -starttls smtp (verifying chain and name),
swaks --tls, Python smtplib starttls() and SMTP_SSL, a private Postfix
relaying to the gateway with smtp_tls_security_level=encrypt; raw sockets
for the exact replies, the state reset after TLS and STARTTLS injection
(CVE-2011-0411); TLS 1.0/1.1 refused, no renegotiation, no compression;
SIGHUP loads a new certificate for new sessions while an older session
goes on; testssl.sh finds nothing HIGH or CRITICAL.  With AUTH (users from
spoolgate-passwd): on tls = encrypt, AUTH is neither offered nor accepted
before STARTTLS (530 5.7.0), and STARTTLS forgets a login made before it.
"""

import glob
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
import peers
from harness import RawSMTP, assert_reply, queued_id, wait_until

OPENSSL = '/usr/bin/openssl'
NAME = 'mx.test'
LOCAL = 'gw.test'		# a local domain of the gateway


def cert_fingerprint_pem(path):
    out = subprocess.run([OPENSSL, 'x509', '-in', path, '-noout', '-fingerprint', '-sha256'],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return out.strip().split('=', 1)[1].replace(':', '').lower()


def der_fingerprint(der):
    import hashlib
    return hashlib.sha256(der).hexdigest()


def read_until(stream, marker, timeout):
    """Bytes of stream until the regex marker matches them (None: to EOF), within timeout."""
    import select
    data, deadline = b'', time.monotonic() + timeout
    while marker is None or not re.search(marker, data, re.S):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise AssertionError('no %r within %ds; have %r' % (marker, timeout, data[-400:]))
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            if marker is None:
                return data
            raise AssertionError('EOF before %r; have %r' % (marker, data[-400:]))
        data += chunk
    return data


def client_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    return ctx


class TLSGateway(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which('openssl') is None:
            raise unittest.SkipTest('openssl is missing')
        cls.gw = harness.Instance('starttls', local_domains='localhost ' + LOCAL)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.ca = peers.TestCA(os.path.join(cls.gw.dir, 'ca'))
        cls.cert, cls.key = cls.ca.issue('mx', dns=[NAME], ips=['127.0.0.1'])
        # Readable by the daemon after the drop of root: SIGHUP reloads them.
        if harness.IS_ROOT:
            import pwd
            pw = pwd.getpwnam(harness.USER)
            os.chown(cls.cert, pw.pw_uid, pw.pw_gid)
            os.chown(cls.key, pw.pw_uid, pw.pw_gid)
        cls.bad_key = os.path.join(cls.gw.dir, 'ca', 'readable.key')
        shutil.copy(cls.key, cls.bad_key)
        os.chmod(cls.bad_key, 0o644)
        tls = {'tls_cert_file': cls.cert, 'tls_key_file': cls.key}
        ports = {n: harness.free_port() for n in ('mx', 'submission', 'submissions', 'plain', 'broken')}
        cls.gw.cfg['listeners'] = {
            'mx': dict(listen='127.0.0.1:%d' % ports['mx'], tls='may', **tls),
            'submission': dict(listen='127.0.0.1:%d' % ports['submission'], tls='encrypt', **tls),
            'submissions': dict(listen='127.0.0.1:%d' % ports['submissions'], tls='wrapper', **tls),
            'plain': dict(listen='127.0.0.1:%d' % ports['plain'], tls='none'),
            'broken': dict(listen='127.0.0.1:%d' % ports['broken'], tls='may',
                           tls_cert_file=cls.cert, tls_key_file=cls.bad_key),
        }
        cls.gw.write_config()
        cls.gw.start_smtpd()
        cls.addr = {n: cls.gw.listener_addr(n) for n in ports}

    # ------------------------------------------------------------ helpers

    def raw(self, listener, **kw):
        return RawSMTP(self.addr[listener], **kw)

    def starttls(self, c, hostname=NAME):
        """STARTTLS on a RawSMTP, then the handshake on its socket (verified)."""
        assert_reply(self, c.cmd('STARTTLS'), 220, '2.0.0', 'STARTTLS')
        self.assertEqual(c.buf, b'', 'bytes after the 220, before the handshake')
        c.sock = client_context(self.ca.cert).wrap_socket(c.sock, server_hostname=hostname)
        return c.sock

    def log_since(self, start):
        return self.gw.read_log('smtpd')[start:]

    def log_mark(self):
        return len(self.gw.read_log('smtpd'))

    def wait_log(self, pattern, start=0, timeout=10):
        wait_until(lambda: re.search(pattern, self.log_since(start)), timeout,
                   'log line %r' % pattern)
        return re.search(pattern, self.log_since(start))

    def stored(self, msgid, box='bob'):
        wait_until(lambda: self.gw.find_mail(box, msgid), 10, 'message %s in %s' % (msgid, box))
        return self.gw.read_mail(box, self.gw.find_mail(box, msgid))

    def send_over(self, c, rcpt='bob@localhost', subject='tls'):
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250, '2.1.0', 'MAIL')
        assert_reply(self, c.cmd('RCPT TO:<%s>' % rcpt), 250, '2.1.5', 'RCPT')
        assert_reply(self, c.cmd('DATA'), 354, None, 'DATA')
        r = c.cmd('Subject: %s\r\n\r\nhello over TLS\r\n.' % subject)
        assert_reply(self, r, 250, '2.0.0', 'end of data')
        return queued_id(r.text)

    def smtplib_send(self, s, subject):
        """One message to bob@localhost through smtplib connection s; its queue id."""
        s.mail('alice@example.org')
        s.rcpt('bob@localhost')
        code, msg = s.data(('Subject: %s\r\n\r\nhello\r\n' % subject).encode())
        self.assertEqual(code, 250, msg)
        return queued_id(msg.decode())

    def assert_received_tls(self, data):
        head = data.split(b'\n\n', 1)[0].decode()
        received = re.search(r'^Received: .*?(?=^\S)', head + '\nX', re.M | re.S).group(0)
        self.assertRegex(received, r'\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)')
        self.assertIn('with ESMTPS id', received)
        return received

    # ------------------------------------------------------------ real clients

    def test_openssl_s_client_verifies_chain_and_name(self):
        """openssl s_client -starttls smtp: chain and name verified; EHLO after TLS has no STARTTLS"""
        p = subprocess.run([OPENSSL, 's_client', '-starttls', 'smtp', '-connect', '%s:%d' % self.addr['mx'],
                            '-CAfile', self.ca.cert, '-verify_hostname', NAME, '-verify_return_error',
                            '-crlf', '-ign_eof'],
                           input=b'EHLO after.example\nQUIT\n', stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode('utf-8', 'replace')
        self.assertEqual(p.returncode, 0, out)
        self.assertIn('Verify return code: 0 (ok)', out)
        self.assertRegex(out, r'Protocol *: TLSv1\.3|New, TLSv1\.3')
        self.assertIn('Compression: NONE', out)
        after = out[out.index('250-'):] if '250-' in out else ''
        self.assertIn('Hello after.example', after, out)
        self.assertNotIn('STARTTLS', after)
        self.assertIn('221 2.0.0', after)

    def test_openssl_s_client_wrong_name_fails(self):
        """the same certificate does not pass for another name (the check is real)"""
        p = subprocess.run([OPENSSL, 's_client', '-starttls', 'smtp', '-connect', '%s:%d' % self.addr['mx'],
                            '-CAfile', self.ca.cert, '-verify_hostname', 'other.test',
                            '-verify_return_error'], input=b'', stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('hostname mismatch', p.stdout.decode().lower())

    def test_swaks_tls(self):
        """swaks --tls: the message is stored, Received: names TLS, the log says tls=TLSv1.x"""
        if shutil.which('swaks') is None:
            self.skipTest('swaks is not installed')
        mark = self.log_mark()
        p = subprocess.run(['swaks', '--server', '%s:%d' % self.addr['mx'], '--tls',
                            '--from', 'alice@example.org', '--to', 'bob@localhost',
                            '--header', 'Subject: swaks-tls'], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode('utf-8', 'replace')
        self.assertEqual(p.returncode, 0, out)
        self.assertIn('<-  220 2.0.0 Ready to start TLS', out)
        self.assertRegex(out, r'TLS started with cipher TLSv1\.[23]')
        msgid = re.search(r'<~\*? *250 2\.0\.0 Ok: queued as (\S+)', out).group(1)
        self.assert_received_tls(self.stored(msgid))
        self.wait_log(r'event=accepted id=%s .* tls=TLSv1\.[23] cipher=\S+' % msgid, mark)

    def test_smtplib_starttls(self):
        """smtplib starttls(): verified, EHLO again without STARTTLS, message stored with TLS in Received:"""
        with smtplib.SMTP(*self.addr['mx'], timeout=30) as s:
            s.ehlo('client.example')
            self.assertTrue(s.has_extn('starttls'))
            code, msg = s.starttls(context=client_context(self.ca.cert))
            self.assertEqual((code, msg), (220, b'2.0.0 Ready to start TLS'))
            self.assertEqual(s.sock.getpeercert()['subject'], ((('commonName', NAME),),))
            s.ehlo('client.example')
            self.assertFalse(s.has_extn('starttls'))
            msgid = self.smtplib_send(s, 'smtplib-tls')
        self.assert_received_tls(self.stored(msgid))

    def test_smtps_wrapper(self):
        """SMTP_SSL on the wrapper listener: greeting inside TLS, no STARTTLS, 503 5.5.1 to one"""
        with smtplib.SMTP_SSL(*self.addr['submissions'], timeout=30,
                              context=client_context(self.ca.cert)) as s:
            s.ehlo('client.example')
            self.assertFalse(s.has_extn('starttls'))
            code, msg = s.docmd('STARTTLS')
            self.assertEqual((code, msg), (503, b'5.5.1 Bad sequence of commands: TLS already active'))
            msgid = self.smtplib_send(s, 'smtps')
        self.assert_received_tls(self.stored(msgid))

    def test_wrapper_plaintext_client_gets_nothing(self):
        """a plaintext client on the wrapper port gets no greeting: the handshake comes first"""
        mark = self.log_mark()
        with self.raw('submissions', greeting=False) as c:
            self.assertTrue(c.nothing_more(1.0))
            c.send('EHLO client.example\r\n')
            self.assertTrue(c.wait_closed(10))
            self.assertNotIn(b'220', c.buf)
        self.wait_log(r'event=tls-failed session=\d+ client=127\.0\.0\.1 listener=submissions reason=', mark)

    def test_postfix_relays_with_encrypt(self):
        """a private Postfix relays to the gateway with smtp_tls_security_level=encrypt"""
        why = peers.missing()
        if why:
            self.skipTest(why)
        pf = peers.Postfix(os.path.join(self.gw.dir, 'postfix'), self.ca, (self.cert, self.key),
                           users={}, services=[], extra_main={
                               'relayhost': '[127.0.0.1]:%d' % self.addr['mx'][1],
                               'default_transport': 'smtp',
                               'smtp_tls_security_level': 'encrypt',
                               'smtp_tls_loglevel': '1',
                           })
        self.addCleanup(pf.cleanup)
        pf.start()
        mark = self.log_mark()
        subprocess.run(['/usr/sbin/sendmail', '-C', pf.conf, '-f', 'alice@mail.test', 'bob@' + LOCAL],
                       input=b'Subject: from postfix\r\n\r\nrelayed by Postfix over TLS\r\n',
                       check=True, timeout=30)
        m = self.wait_log(r'event=accepted id=(\S+) .* tls=(TLSv1\.[23]) cipher=\S+', mark, timeout=60)
        data = self.stored(m.group(1))
        self.assertIn(b'relayed by Postfix over TLS', data)
        self.assert_received_tls(data)
        wait_until(lambda: re.search(r'Trusted TLS connection established to|'
                                     r'Untrusted TLS connection established to', pf.read_log()),
                   20, 'Postfix logging its TLS connection')

    # ------------------------------------------------------------ replies and state

    def test_reply_codes(self):
        """220 2.0.0, 501 5.5.4, 503 5.5.1 (transaction, twice), 502 5.5.1 (tls=none)"""
        with self.raw('mx') as c:
            self.assertIn('STARTTLS', c.ehlo().lines)
            assert_reply(self, c.cmd('STARTTLS now'), 501, '5.5.4', 'STARTTLS with an argument')
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250, '2.1.0')
            r = c.cmd('STARTTLS')
            assert_reply(self, r, 503, '5.5.1', 'STARTTLS inside a transaction')
            self.assertIn('MAIL transaction in progress', r.text)
            assert_reply(self, c.cmd('RSET'), 250)
            self.starttls(c)
            c.ehlo()
            r = c.cmd('STARTTLS')
            assert_reply(self, r, 503, '5.5.1', 'STARTTLS inside TLS')
            self.assertEqual(r.text, '5.5.1 Bad sequence of commands: TLS already active')
        with self.raw('plain') as c:
            self.assertNotIn('STARTTLS', c.ehlo().lines)
            assert_reply(self, c.cmd('STARTTLS'), 502, '5.5.1', 'STARTTLS on tls=none')

    def test_encrypt_requires_starttls(self):
        """tls=encrypt: 530 5.7.0 before TLS; after it MAIL without EHLO is 503, then mail goes"""
        with self.raw('submission') as c:
            self.assertIn('STARTTLS', c.ehlo().lines)
            r = c.cmd('MAIL FROM:<alice@example.org>')
            assert_reply(self, r, 530, '5.7.0', 'MAIL before STARTTLS')
            self.assertEqual(r.text, '5.7.0 Must issue a STARTTLS command first')
            self.starttls(c)
            r = c.cmd('MAIL FROM:<alice@example.org>')
            assert_reply(self, r, 503, '5.5.1', 'MAIL right after the handshake, without EHLO')
            self.assertIn('send HELO/EHLO first', r.text)
            self.assertNotIn('STARTTLS', c.ehlo().lines)
            msgid = self.send_over(c)
        self.assert_received_tls(self.stored(msgid))

    def test_state_forgotten_after_starttls(self):
        """the EHLO name before STARTTLS does not survive the handshake: a new EHLO is needed and used"""
        with self.raw('mx') as c:
            c.ehlo('before.example')
            self.starttls(c)
            assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 503, '5.5.1', 'RCPT after TLS')
            c.ehlo('after.example')
            msgid = self.send_over(c)
        received = self.assert_received_tls(self.stored(msgid))
        self.assertIn('from after.example', received)
        self.assertNotIn('before.example', received)

    def test_unloadable_key_keeps_plaintext(self):
        """tls=may with a key others may read: logged at start, no STARTTLS offered, 454 4.7.0, mail taken"""
        log = self.gw.read_log('smtpd')
        self.assertRegex(log, r'event=tls-unavailable listener=broken tls=may error="%s: mode 0644 lets '
                         r'group or others read it \(chmod 600\)"' % re.escape(self.bad_key))
        with self.raw('broken') as c:
            self.assertNotIn('STARTTLS', c.ehlo().lines)
            r = c.cmd('STARTTLS')
            assert_reply(self, r, 454, '4.7.0', 'STARTTLS without a usable key')
            self.assertEqual(r.text, '4.7.0 TLS not available due to temporary reason')
            msgid = self.send_over(c)
        data = self.stored(msgid)
        self.assertNotIn(b'(using TLS', data)
        self.wait_log(r'event=accepted id=%s .* tls=no' % msgid)

    def _injection(self, injected, probe, probe_code, probe_detail):
        mark = self.log_mark()
        with self.raw('mx') as c:
            c.ehlo()
            c.send(b'STARTTLS\r\n' + injected)		# one write: one segment
            assert_reply(self, c.reply(), 220, '2.0.0', 'STARTTLS')
            self.assertEqual(c.buf, b'', 'the injected command was answered in plaintext')
            c.sock = client_context(self.ca.cert).wrap_socket(c.sock, server_hostname=NAME)
            self.assertTrue(c.nothing_more(1.5), 'a reply inside TLS to a command sent before it: %r' % c.buf)
            c.ehlo()
            r = c.cmd(probe)
            assert_reply(self, r, probe_code, '5.5.1', probe)
            self.assertIn(probe_detail, r.text)
        self.wait_log(r'event=starttls-injection session=\d+ client=127\.0\.0\.1 listener=mx octets=%d '
                      % len(injected), mark)

    def test_injection_rset_discarded(self):
        """STARTTLS\\r\\nRSET\\r\\n in one write: the RSET is never answered inside TLS"""
        self._injection(b'RSET\r\n', 'DATA', 503, 'need MAIL command')

    def test_injection_mail_discarded(self):
        """STARTTLS\\r\\nMAIL FROM:<a@b>\\r\\n in one write: no MAIL inside TLS (RCPT is 503)"""
        self._injection(b'MAIL FROM:<a@b>\r\n', 'RCPT TO:<bob@localhost>', 503, 'need MAIL command')

    # ------------------------------------------------------------ protocol hardening

    def _s_client_old(self, flag):
        return subprocess.run([OPENSSL, 's_client', '-starttls', 'smtp', '-connect', '%s:%d' % self.addr['mx'],
                               flag, '-cipher', 'DEFAULT:@SECLEVEL=0'], input=b'',
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)

    def test_old_protocols_refused(self):
        """TLS 1.0 and 1.1 refused by the server (the client is allowed to try them)"""
        for flag in ('-tls1', '-tls1_1'):
            mark = self.log_mark()
            p = self._s_client_old(flag)
            out = p.stdout.decode('utf-8', 'replace')
            self.assertNotEqual(p.returncode, 0, out)
            self.assertNotIn('New, TLSv1', out.replace('New, TLSv1.2', '').replace('New, TLSv1.3', ''))
            # the server, not the client, said no: it logged why
            self.wait_log(r'event=tls-failed session=\d+ client=127\.0\.0\.1 listener=mx '
                          r'reason="?(unsupported protocol|no protocols available|version too low)', mark)

    def test_weak_ciphers_refused(self):
        """a TLS 1.2 client offering only NULL, anonymous, export, DES, RC4 or 3DES ciphers finds none"""
        mark = self.log_mark()
        p = subprocess.run([OPENSSL, 's_client', '-starttls', 'smtp', '-connect', '%s:%d' % self.addr['mx'],
                            '-tls1_2', '-cipher', 'eNULL:aNULL:EXPORT:LOW:RC4:3DES:@SECLEVEL=0'], input=b'',
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode('utf-8', 'replace')
        self.assertNotEqual(p.returncode, 0, out)
        self.assertNotIn('Cipher is', out.replace('Cipher is (NONE)', ''))
        self.wait_log(r'event=tls-failed session=\d+ client=127\.0\.0\.1 listener=mx reason="no shared cipher"', mark)

    def test_renegotiation_refused(self):
        """a TLS 1.2 client that asks to renegotiate (s_client's R) gets the no_renegotiation alert"""
        p = subprocess.Popen([OPENSSL, 's_client', '-starttls', 'smtp', '-connect', '%s:%d' % self.addr['mx'],
                              '-tls1_2', '-crlf'], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            # s_client reads its command letters once the handshake is done and
            # the session printed (its last block ends with the verify result).
            before = read_until(p.stdout, rb'Verify return code.*\n---', 30)
            p.stdin.write(b'R\n')
            p.stdin.flush()
            after = read_until(p.stdout, None, 30).decode('utf-8', 'replace')
            p.stdin.close()
            p.wait(30)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertIn(b'Protocol  : TLSv1.2', before)
        self.assertIn('RENEGOTIATING', after)
        self.assertIn('no renegotiation', after)

    # ------------------------------------------------------------ SIGHUP

    def _peer_fingerprint(self, listener='mx'):
        with self.raw(listener) as c:
            c.ehlo()
            tls = self.starttls(c)
            der = tls.getpeercert(binary_form=True)
            c.cmd('QUIT')
        return der_fingerprint(der)

    def test_sighup_reloads_certificate(self):
        """SIGHUP: new sessions get the new certificate, a session opened before keeps working;
        a certificate that does not load keeps the one in use and the log names the file"""
        old_fp = cert_fingerprint_pem(self.cert)
        self.assertEqual(self._peer_fingerprint(), old_fp)
        backup = {p: open(p, 'rb').read() for p in (self.cert, self.key)}
        self.addCleanup(self._restore_certificate, backup)
        early = self.raw('mx')
        self.addCleanup(early.close)
        early.ehlo()
        self.starttls(early)
        early.ehlo()
        assert_reply(self, early.cmd('MAIL FROM:<alice@example.org>'), 250)
        # A new pair for the same name, written over the files the listener reads.
        new_cert, new_key = self.ca.issue('mx-new', dns=[NAME], ips=['127.0.0.1'])
        self._install(new_cert, new_key)
        new_fp = cert_fingerprint_pem(self.cert)
        self.assertNotEqual(new_fp, old_fp)
        mark = self.log_mark()
        self.gw.procs['smtpd'].send_signal(signal.SIGHUP)
        self.wait_log(r'event=tls-reload listener=mx ', mark)
        self.assertEqual(self._peer_fingerprint(), new_fp)
        self.assertEqual(der_fingerprint(early.sock.getpeercert(binary_form=True)), old_fp)
        assert_reply(self, early.cmd('RCPT TO:<bob@localhost>'), 250)
        assert_reply(self, early.cmd('DATA'), 354)
        r = early.cmd('Subject: opened before the reload\r\n\r\nstill here\r\n.')
        assert_reply(self, r, 250, '2.0.0', 'the older session after SIGHUP')
        self.assert_received_tls(self.stored(queued_id(r.text)))
        # A key that does not match: the reload fails, the new certificate stays in use.
        with open(self.key, 'wb') as f:
            f.write(open(self.ca.key, 'rb').read())
        mark = self.log_mark()
        self.gw.procs['smtpd'].send_signal(signal.SIGHUP)
        self.wait_log(r'event=tls-reload-failed listener=mx error="%s does not match certificate %s" '
                      r'action="the previous certificate stays in use"'
                      % (re.escape(self.key), re.escape(self.cert)), mark)
        self.assertEqual(self._peer_fingerprint(), new_fp)

    def _install(self, cert, key):
        for src, dst in ((cert, self.cert), (key, self.key)):
            with open(src, 'rb') as f, open(dst, 'wb') as g:
                g.write(f.read())

    def _restore_certificate(self, backup):
        for path, data in backup.items():
            with open(path, 'wb') as f:
                f.write(data)
        self.gw.procs['smtpd'].send_signal(signal.SIGHUP)
        wait_until(lambda: self._peer_fingerprint() == cert_fingerprint_pem(self.cert), 10,
                   'the original certificate back')

    # ------------------------------------------------------------ testssl.sh

    def test_testssl(self):
        """testssl.sh --starttls smtp on loopback: no finding of severity HIGH or CRITICAL"""
        exe = shutil.which('testssl') or shutil.which('testssl.sh')
        if exe is None:
            self.skipTest('testssl.sh is not installed (scripts/deps.sh installs it)')
        out_json = os.path.join(self.gw.dir, 'testssl.json')
        host, port = self.addr['mx']
        # Loopback only (--ip, no DNS).  Every check that can report HIGH or
        # CRITICAL about the server's TLS: protocols (-p: SSLv2/3), cipher
        # categories (-s: NULL, aNULL, EXPORT, LOW), Heartbleed (-H), CCS
        # injection (-I), renegotiation (-R), CRIME/compression (-C), POODLE
        # (-O), FREAK (-F), DROWN (-D), LOGJAM (-J), RC4 (-4).  Left out to
        # stay near three minutes on two busy cores: -f, -P, ROBOT, BEAST,
        # LUCKY13, SWEET32, fallback SCSV (LOW/MEDIUM/INFO only; the key is
        # ECDSA, so ROBOT's RSA key transport does not exist here), and -S,
        # whose certificate checks judge the test CA's two-day certificate
        # (no OCSP/CRL, not publicly trusted), not the server's TLS.
        # --fast makes -s ask through Debian's OpenSSL, which cannot offer
        # NULL or anonymous ciphers (measured: a listener offering them
        # passes with --fast; without it -s alone took 3m48s here), so
        # test_weak_ciphers_refused offers them with s_client at SECLEVEL=0.
        argv = [exe, '--quiet', '--color', '0', '--warnings', 'off', '--nodns', 'none', '--ip', host,
                '--starttls', 'smtp', '--fast', '--openssl-timeout', '10', '--connect-timeout', '10',
                '-p', '-s', '-H', '-I', '-R', '-C', '-O', '-F', '-D', '-J', '-4',
                '--jsonfile', out_json, '%s:%d' % (host, port)]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=400)
        out = p.stdout.decode('utf-8', 'replace')
        harness.log('---- testssl.sh output (%s) ----' % ' '.join(argv))
        for line in out.splitlines():
            harness.log('  ' + line)
        with open(out_json) as f:
            findings = json.load(f)
        self.assertTrue(any(x['id'] == 'TLS1_3' for x in findings), 'testssl.sh did not reach the server')
        bad = [x for x in findings if x.get('severity') in ('HIGH', 'CRITICAL')]
        self.assertEqual(bad, [], 'testssl.sh findings of severity HIGH or CRITICAL')
        by_id = {x['id']: x['finding'] for x in findings}
        self.assertIn('not offered', by_id.get('TLS1_1', ''))
        self.assertIn('not offered', by_id.get('TLS1', ''))
        self.assertIn('not vulnerable', by_id.get('CRIME_TLS', ''))
        self.assertIn('not vulnerable', by_id.get('secure_client_renego', ''))


class WrapperRefusal(unittest.TestCase):
    """A refusal before a session exists (max_sessions_per_client) on an
    implicit-TLS listener: closed without a plaintext byte; on a STARTTLS
    listener the 421 is still said."""

    def test_no_plaintext_into_a_tls_port(self):
        gw = harness.Instance('wrapper-refusal', max_sessions_per_client=1)
        self.addCleanup(gw.cleanup)
        ca = peers.TestCA(os.path.join(gw.dir, 'ca'))
        cert, key = ca.issue('mx', dns=[NAME], ips=['127.0.0.1'])
        gw.cfg['listeners'] = {
            'submissions': dict(listen='127.0.0.1:%d' % harness.free_port(), tls='wrapper',
                                tls_cert_file=cert, tls_key_file=key),
            'mx': dict(listen='127.0.0.1:%d' % harness.free_port(), tls='may',
                       tls_cert_file=cert, tls_key_file=key),
        }
        gw.write_config()
        gw.start_smtpd()
        for name, sent in (('submissions', False), ('mx', True)):
            first = socket.create_connection(gw.listener_addr(name), timeout=10)
            try:
                if name == 'submissions':
                    first = client_context(ca.cert).wrap_socket(first, server_hostname=NAME)
                self.assertTrue(first.recv(100).startswith(b'220 '))	# the first session is served
                with RawSMTP(gw.listener_addr(name), greeting=False) as second:
                    self.assertTrue(second.wait_closed(10))
                    if sent:
                        self.assertTrue(second.buf.startswith(b'421 4.7.0 '), second.buf)
                    else:
                        self.assertEqual(second.buf, b'', 'plaintext sent into an implicit-TLS port')
                wait_until(lambda: re.search(r'event=refused client=127\.0\.0\.1 reply=.* listener=%s sent=%s'
                                             % (name, 'yes' if sent else 'no'), gw.read_log('smtpd')),
                           10, 'the refusal logged with sent=%s' % sent)
            finally:
                first.close()
            wait_until(lambda: gw.read_log('smtpd').count('event=disconnect') >= (1 if not sent else 2),
                       10, 'the first session gone')


class TLSWithAuth(unittest.TestCase):
    """TLS meets AUTH (users made by spoolgate-passwd, as in test_auth.py):
    on a submission listener (tls = encrypt, auth = required) AUTH and MAIL
    before STARTTLS are 530 5.7.0 and AUTH is offered only after it; a login
    made in plaintext on an MX listener is forgotten by STARTTLS."""

    @classmethod
    def setUpClass(cls):
        import test_auth
        cls.users = test_auth.USERS
        cls.plain = staticmethod(test_auth.plain)
        cls.gw = test_auth.new_gateway('starttls-auth')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.ca = peers.TestCA(os.path.join(cls.gw.dir, 'ca'))
        cert, key = cls.ca.issue('mx', dns=[NAME], ips=['127.0.0.1'])
        tls = {'tls_cert_file': cert, 'tls_key_file': key}
        cls.gw.cfg['listeners'] = {
            'submission': dict(listen='127.0.0.1:%d' % harness.free_port(), tls='encrypt', auth='required',
                               **tls),
            'mx': dict(listen='127.0.0.1:%d' % harness.free_port(), tls='may', auth='offer',
                       auth_plaintext=True, **tls),
        }
        cls.gw.write_config()
        cls.gw.start_smtpd()

    def starttls(self, c):
        assert_reply(self, c.cmd('STARTTLS'), 220, '2.0.0', 'STARTTLS')
        c.sock = client_context(self.ca.cert).wrap_socket(c.sock, server_hostname=NAME)

    def test_submission_needs_tls_before_auth(self):
        user = 'alice@example.org'
        with RawSMTP(self.gw.listener_addr('submission')) as c:
            lines = c.ehlo().lines
            self.assertIn('STARTTLS', lines)
            self.assertFalse(any(l.startswith('AUTH') for l in lines), lines)
            r = c.cmd('AUTH PLAIN ' + self.plain(user, self.users[user][0]))
            assert_reply(self, r, 530, '5.7.0', 'AUTH before STARTTLS')
            self.assertEqual(r.text, '5.7.0 Must issue a STARTTLS command first')
            assert_reply(self, c.cmd('MAIL FROM:<%s>' % user), 530, '5.7.0', 'MAIL before STARTTLS')
            self.starttls(c)
            lines = c.ehlo().lines
            self.assertNotIn('STARTTLS', lines)
            self.assertTrue(any(l.startswith('AUTH ') and 'PLAIN' in l for l in lines), lines)
            assert_reply(self, c.cmd('AUTH PLAIN ' + self.plain(user, self.users[user][0])), 235, '2.7.0')
            assert_reply(self, c.cmd('MAIL FROM:<%s>' % user), 250)
            assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
            assert_reply(self, c.cmd('DATA'), 354)
            r = c.cmd('Subject: tls and auth\r\n\r\nhello\r\n.')
            assert_reply(self, r, 250, '2.0.0')
        msgid = queued_id(r.text)
        wait_until(lambda: self.gw.find_mail('bob', msgid), 10, 'the message stored')
        head = self.gw.read_mail('bob', self.gw.find_mail('bob', msgid)).split(b'\n\n', 1)[0].decode()
        self.assertRegex(head, r'\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)\n\t'
                               r'\(Authenticated sender: alice@example\.org\)\n\tby .* with ESMTPSA id ')

    def test_starttls_forgets_a_login(self):
        user = 'alice@example.org'
        with RawSMTP(self.gw.listener_addr('mx')) as c:
            c.ehlo()
            assert_reply(self, c.cmd('AUTH PLAIN ' + self.plain(user, self.users[user][0])), 235, '2.7.0')
            assert_reply(self, c.cmd('MAIL FROM:<%s>' % user), 250)
            assert_reply(self, c.cmd('RCPT TO:<carol@remote.example>'), 250, '2.1.5', 'relay after AUTH')
            assert_reply(self, c.cmd('RSET'), 250)
            self.starttls(c)
            c.ehlo()
            # the login made in plaintext is gone: no relaying, and AUTH may be given again
            assert_reply(self, c.cmd('MAIL FROM:<%s>' % user), 250)
            assert_reply(self, c.cmd('RCPT TO:<carol@remote.example>'), 550, '5.7.1', 'relay after STARTTLS')
            assert_reply(self, c.cmd('RSET'), 250)
            assert_reply(self, c.cmd('AUTH PLAIN ' + self.plain(user, self.users[user][0])), 235, '2.7.0',
                         'AUTH again after STARTTLS')


if __name__ == '__main__':
    harness.main()
