#!/usr/bin/python3
"""test_submission - a submission service as the README and ./run set it up.

One listener with tls = encrypt and auth = required, relay_networks empty
(nobody relays by address), certificates from a private test CA, users made
by spoolgate-passwd. The clients are configured as their users configure
them, over STARTTLS, never in plaintext:

    msmtp       tls on, tls_starttls on, tls_trust_file, auth on: the
                message is stored with TLS and the login in Received:
    swaks       --tls --auth PLAIN to a remote domain: relayed (queued), the
                record keeps the authenticated identity
    gsasl       SCRAM-SHA-256 after STARTTLS; the password transition both
                steps over TLS: 432 4.7.12, one PLAIN login (smtplib
                starttls + login), then SCRAM succeeds
    Postfix     a private instance relaying to the gateway with
                smtp_tls_security_level = encrypt and SASL
                (smtp_sasl_auth_enable): the message arrives, the log names
                the login
"""

import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
import peers
from harness import RawSMTP, assert_reply, queued_id, wait_until
from test_auth import make_users

NAME = 'mx.test'
LOCAL = 'gw.test'		# a local domain of the gateway, not of the Postfix client

# name -> (password, spoolgate-passwd options)
USERS = {
    'alice@example.org': ('alice-secret', []),
    'carol': ('carol-crypt-only', ['--crypt-only']),
    'pfx': ('postfix-client-secret', []),
}


class Submission(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        missing = [p for p in ('msmtp', 'swaks', 'gsasl', 'openssl') if not shutil.which(p)]
        if missing:
            raise unittest.SkipTest('missing: %s (scripts/deps.sh installs them)' % ' '.join(missing))
        cls.gw = harness.Instance('submission', local_domains='localhost ' + LOCAL, relay_networks='')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.ca = peers.TestCA(os.path.join(cls.gw.dir, 'ca'))
        cls.cert, cls.key = cls.ca.issue('mx', dns=[NAME], ips=['127.0.0.1'])
        cls.users = os.path.join(cls.gw.dir, 'users')
        make_users(cls.users, cls.gw.cfg.get('user'), USERS)
        port = harness.free_port()
        cls.gw.cfg['auth_users'] = cls.users
        cls.gw.cfg['listeners'] = {'submission': {
            'listen': '127.0.0.1:%d' % port, 'tls': 'encrypt', 'auth': 'required',
            'tls_cert_file': cls.cert, 'tls_key_file': cls.key}}
        cls.gw.write_config()
        cls.gw.start_smtpd()
        cls.sub = cls.gw.listener_addr('submission')

    # ------------------------------------------------------------ helpers

    def log_since(self, mark):
        return self.gw.read_log('smtpd')[mark:]

    def wait_log(self, pattern, mark, timeout=30):
        wait_until(lambda: re.search(pattern, self.log_since(mark)), timeout, 'log line %r' % pattern)
        return re.search(pattern, self.log_since(mark))

    def stored(self, msgid, box='bob'):
        wait_until(lambda: self.gw.find_mail(box, msgid), 20, 'message %s in %s' % (msgid, box))
        return self.gw.read_mail(box, self.gw.find_mail(box, msgid)).decode('utf-8', 'replace')

    def received(self, data):
        head = data.split('\n\n', 1)[0]
        return re.search(r'^Received: .*?(?=^\S)', head + '\nX', re.M | re.S).group(0)

    def gsasl(self, mech, user, password):
        """gsasl --smtp with STARTTLS, checking the chain: (status, the server's replies)."""
        r = subprocess.run(['gsasl', '--client', '--smtp', '--connect=%s:%d' % self.sub,
                            # --starttls: gsasl 2.2 looks for STARTTLS only on a
                            # "250-" line, and ours is the last ("250 STARTTLS").
                            # --no-cb: without it gsasl 2.2 ends the exchange itself
                            # right after the first "334 " over TLS 1.3 ("mechanism
                            # error"), before it sends its first SCRAM message; the
                            # server offers no SCRAM-SHA-256-PLUS.
                            '--starttls', '--no-cb', '--x509-ca-file=' + self.ca.cert, '--mechanism=' + mech,
                            '--authentication-id=' + user, '--password=' + password],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        out = r.stdout.splitlines() + r.stderr.splitlines()
        return r.returncode, [l for l in out if re.match(r'\d{3}[ -]', l)], out

    # ------------------------------------------------------------ the listener's rules

    def test_nothing_before_tls_and_auth(self):
        """530 5.7.0 for MAIL and AUTH before STARTTLS; after it, 530 5.7.0 for MAIL before AUTH"""
        c = RawSMTP(self.sub)
        self.addCleanup(c.close)
        ehlo = c.ehlo()
        self.assertIn('STARTTLS', ehlo.lines)
        self.assertFalse(any(l.startswith('AUTH') for l in ehlo.lines), ehlo.lines)
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 530, '5.7.0', 'MAIL before STARTTLS')
        assert_reply(self, c.cmd('AUTH PLAIN AGFsaWNlAHg='), 530, '5.7.0', 'AUTH before STARTTLS')
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        with smtplib.SMTP(*self.sub, timeout=30) as s:
            s.starttls(context=ctx)
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            self.assertIn('auth', s.esmtp_features)
            self.assertIn('SCRAM-SHA-256', s.esmtp_features['auth'].split())
            code, text = s.mail('alice@example.org')
            self.assertEqual(code, 530)
            self.assertTrue(text.startswith(b'5.7.0 Authentication required'), text)

    # ------------------------------------------------------------ real clients

    def test_msmtp_starttls_and_auth(self):
        """msmtp configured as a user would (587-style: STARTTLS, auth on): stored, Received: says TLS and ESMTPSA"""
        rc = os.path.join(self.gw.dir, 'msmtprc')
        with open(rc, 'w') as f:
            f.write('defaults\nlogfile %s/msmtp.log\n\n'
                    'account gateway\nhost 127.0.0.1\nport %d\n'
                    'tls on\ntls_starttls on\ntls_trust_file %s\n'
                    'auth on\nuser alice@example.org\npassword %s\nfrom alice@example.org\n\n'
                    'account default : gateway\n' % (self.gw.dir, self.sub[1], self.ca.cert,
                                                    USERS['alice@example.org'][0]))
        os.chmod(rc, 0o600)
        mark = len(self.gw.read_log('smtpd'))
        r = subprocess.run(['msmtp', '-C', rc, 'bob@' + LOCAL], capture_output=True, text=True,
                           input='Subject: msmtp over TLS\n\nsent by msmtp\n', timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = self.wait_log(r'event=accepted id=(\S+) [^\n]*tls=TLSv1\.[23] [^\n]*auth=\S+', mark)
        data = self.stored(m.group(1))
        self.assertIn('sent by msmtp', data)
        received = self.received(data)
        self.assertRegex(received, r'\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)')
        self.assertIn('(Authenticated sender: alice@example.org)', received)
        self.assertIn('with ESMTPSA id', received)

    def test_swaks_tls_auth_relays(self):
        """swaks --tls --auth PLAIN to a remote domain: relayed (queued) with the identity in the record"""
        r = subprocess.run(['swaks', '--server', '%s:%d' % self.sub, '--tls', '--tls-verify',
                            '--tls-ca-path', self.ca.cert, '--tls-sni', NAME,
                            '--auth', 'PLAIN', '--auth-user', 'alice@example.org',
                            '--auth-password', USERS['alice@example.org'][0],
                            '--from', 'alice@example.org', '--to', 'erin@example.com',
                            '--header', 'Subject: swaks tls auth'],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'<~\s+235 2\.7\.0')
        m = re.search(r'<~\s+250 2\.0\.0 .*', r.stdout)
        self.assertIsNotNone(m, r.stdout)
        msgid = queued_id(m.group(0).split('<~', 1)[1].strip()[4:])
        where, text = self.gw.find_record(msgid)
        self.assertIsNotNone(where, 'no record of %s' % msgid)
        self.assertRegex(text, r'(?m)^auth: PLAIN user=alice@example\.org')
        self.assertIn('erin@example.com', text)

    def test_swaks_without_auth_cannot_relay(self):
        """the same over TLS without AUTH: 530 5.7.0 Authentication required at MAIL"""
        r = subprocess.run(['swaks', '--server', '%s:%d' % self.sub, '--tls', '--tls-verify',
                            '--tls-ca-path', self.ca.cert, '--tls-sni', NAME,
                            '--from', 'alice@example.org', '--to', 'erin@example.com'],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r'<~?\*+\s+530 5\.7\.0 Authentication required')

    def test_gsasl_scram_over_starttls(self):
        """gsasl --smtp: STARTTLS (chain checked), then SCRAM-SHA-256: 235 2.7.0"""
        status, replies, out = self.gsasl('SCRAM-SHA-256', 'alice@example.org', USERS['alice@example.org'][0])
        self.assertEqual(status, 0, '\n'.join(out))
        self.assertIn('235 2.7.0 Authentication successful', replies)
        self.assertIn('220 2.0.0 Ready to start TLS', replies)

    def test_password_transition_over_tls(self):
        """crypt-only user: SCRAM gets 432 4.7.12; one PLAIN over STARTTLS; then SCRAM gets 235"""
        password = USERS['carol'][0]
        status, replies, out = self.gsasl('SCRAM-SHA-256', 'carol', password)
        self.assertNotEqual(status, 0)
        self.assertIn('432 4.7.12 A password transition is needed', replies, '\n'.join(out))
        mark = len(self.gw.read_log('smtpd'))
        with smtplib.SMTP(*self.sub, timeout=30) as s:
            s.starttls(context=ssl.create_default_context(cafile=self.ca.cert))
            s.ehlo()
            code, text = s.login('carol', password)
            self.assertEqual(code, 235)
        self.wait_log(r'event=auth-transition step=stored', mark)
        status, replies, out = self.gsasl('SCRAM-SHA-256', 'carol', password)
        self.assertEqual(status, 0, '\n'.join(out))
        self.assertIn('235 2.7.0 Authentication successful', replies)

    def test_postfix_client_with_tls_and_sasl(self):
        """a private Postfix relays to the submission listener: encrypt + SASL, message stored"""
        why = peers.missing()
        if why:
            self.skipTest(why)
        pf = peers.Postfix(os.path.join(self.gw.dir, 'postfix'), self.ca, (self.cert, self.key),
                           users={}, services=[], extra_main={
                               'relayhost': '[127.0.0.1]:%d' % self.sub[1],
                               'default_transport': 'smtp',
                               'smtp_tls_security_level': 'encrypt',
                               'smtp_tls_loglevel': '1',
                               'smtp_sasl_auth_enable': 'yes',
                               'smtp_sasl_password_maps': 'static:pfx:' + USERS['pfx'][0],
                               'smtp_sasl_security_options': 'noanonymous',
                               'smtp_sasl_tls_security_options': 'noanonymous',
                           })
        self.addCleanup(pf.cleanup)
        pf.start()
        mark = len(self.gw.read_log('smtpd'))
        subprocess.run(['/usr/sbin/sendmail', '-C', pf.conf, '-f', 'alice@mail.test', 'bob@' + LOCAL],
                       input=b'Subject: from postfix\r\n\r\nrelayed by Postfix with SASL over TLS\r\n',
                       check=True, timeout=30)
        m = self.wait_log(r'event=accepted id=(\S+) [^\n]*tls=TLSv1\.[23] [^\n]*auth=\S+', mark, timeout=90)
        data = self.stored(m.group(1))
        self.assertIn('relayed by Postfix with SASL over TLS', data)
        received = self.received(data)
        self.assertIn('(Authenticated sender: pfx)', received)
        self.assertIn('with ESMTPSA id', received)
        wait_until(lambda: re.search(r'status=sent', pf.read_log()), 30, "Postfix's status=sent")


if __name__ == '__main__':
    harness.main()
