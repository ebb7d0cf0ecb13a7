#!/usr/bin/python3
"""test_auth - SMTP AUTH (RFC 4954) of spoolgate-smtpd and the relay policy behind it.

Users are made with the real spoolgate-passwd; the clients are the ones
people use: swaks --auth (PLAIN, LOGIN), Python smtplib login, gsasl --smtp
(SCRAM-SHA-256), msmtp configured as a user would, nmap's smtp-open-relay
script, and a raw socket where a client would not misbehave.  Every row of
the issue is asserted with its code and enhanced code:

    235 2.7.0  PLAIN, LOGIN, SCRAM-SHA-256 succeed
    334        the challenges (SCRAM's three steps, LOGIN's prompts)
    535 5.7.8  a wrong password, after a delay that doubles per failure of
               that client address, across its sessions (read from the log,
               never timed), counted into max_errors
    501 5.5.2  a response that is not base64;  501 5.0.0 "*" cancels
    500 5.5.6  an exchange line over the limit
    504 5.5.4  an unknown mechanism
    503 5.5.1  AUTH twice, in a transaction, after HELO
    538 5.7.11 PLAIN/LOGIN without TLS where the listener forbids it
    534 5.7.9  a mechanism below auth_min_mechanism
    432 4.7.12 SCRAM for a user with only a crypt hash; after one PLAIN the
               derived key is stored (spool/auth/scram-derived) and SCRAM
               succeeds, also after a restart; a new password makes it stale
    454 4.7.0  the users file cannot be read; SIGHUP loads the fixed file,
               a broken one keeps the users loaded before
    530 5.7.0  MAIL before AUTH where auth = required
    553 5.7.1  restrict_sender: a sender the user does not own
    550 5.7.1  relaying without AUTH (empty relay_networks); allowed after it

AUTH= on MAIL is recorded in the queue record, the identity in the record,
the Received: header (ESMTPA) and the accepted log line; no password and
no challenge ever reaches the log.  In this branch there is no TLS yet:
PLAIN and LOGIN succeed on a listener with auth_plaintext = yes.
"""

import base64
import os
import re
import shutil
import signal
import smtplib
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, log, queued_id

PASSWD = os.path.join(harness.BUILD, 'smtpd', 'spoolgate-passwd')

# name -> (password, spoolgate-passwd options)
USERS = {
    'alice@example.org': ('alice pass phrase', ['--from', 'alice@example.org,@alice.example']),
    'carol': ('carol crypt only', ['--crypt-only', '--from', 'carol@example.org']),
    'sam@example.org': ('sam scram only', ['--scram-only']),
}


def make_users(path, owner=None, users=None):
    """Users (name -> (password, spoolgate-passwd options); USERS by default)
    added to the users file path by the real spoolgate-passwd, then given to owner."""
    for name, (password, opts) in (users or USERS).items():
        r = subprocess.run([PASSWD, '-f', path, 'add', '--stdin'] + opts + [name],
                           input=password + '\n', capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    if owner and harness.IS_ROOT:
        import pwd
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def new_gateway(name, **cfg):
    """A gateway whose users file is made by spoolgate-passwd; nobody may relay without AUTH."""
    settings = dict(relay_networks='', auth='offer', auth_failure_delay=1)
    settings.update(cfg)
    gw = harness.Instance(name, **settings)
    gw.users = os.path.join(gw.dir, 'users')
    make_users(gw.users, gw.cfg.get('user'))
    gw.cfg['auth_users'] = gw.users
    gw.write_config()
    return gw


def plain(user, password):
    return base64.b64encode(b'\0' + user.encode() + b'\0' + password.encode()).decode()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def gsasl(gw, mech, user, password):
    """gsasl --smtp against the gateway (or a (host, port) of one of its
    listeners): (exit status, the server's replies)."""
    addr = gw if isinstance(gw, tuple) else gw.smtp_addr
    r = subprocess.run(['gsasl', '--client', '--smtp', '--connect=%s:%d' % addr,
                        '--mechanism=' + mech, '--authentication-id=' + user,
                        '--password=' + password, '--no-starttls'],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    replies = [l for l in r.stdout.splitlines() + r.stderr.splitlines() if re.match(r'\d{3}[ -]', l)]
    return r.returncode, replies


class AuthOffered(unittest.TestCase):
    """AUTH offered, PLAIN and LOGIN allowed in plaintext, senders restricted."""

    @classmethod
    def setUpClass(cls):
        cls.gw = new_gateway('auth', **{'smtpd.auth_plaintext': True, 'restrict_sender': True,
                                        'max_errors': 3})
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def raw(self):
        c = RawSMTP(self.gw.smtp_addr, timeout=20)
        self.addCleanup(c.close)
        return c

    def authed(self, user='alice@example.org'):
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain(user, USERS[user][0])), 235, '2.7.0', 'AUTH PLAIN')
        return c

    def assert_no_secret_logged(self):
        text = self.gw.read_log('smtpd')
        for name, (password, _) in USERS.items():
            self.assertNotIn(password, text, 'a password is in the log')
            self.assertNotIn(plain(name, password), text, 'a PLAIN response is in the log')
            self.assertNotIn(b64(password), text, 'a LOGIN response is in the log')

    def test_ehlo_offers_auth(self):
        c = self.raw()
        r = c.ehlo()
        self.assertIn('AUTH SCRAM-SHA-256 PLAIN LOGIN', r.lines)
        r = c.cmd('HELP AUTH')
        assert_reply(self, r, 214)

    def test_swaks_plain_relays_and_records(self):
        r = subprocess.run(['swaks', '--server', '%s:%d' % self.gw.smtp_addr, '--auth', 'PLAIN',
                            '--auth-user', 'alice@example.org', '--auth-password', USERS['alice@example.org'][0],
                            '--from', 'alice@example.org', '--to', 'bob@example.net,bob@localhost',
                            '--header', 'Subject: swaks plain'],
                           capture_output=True, text=True, timeout=60)
        log(r.stdout[-1500:])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('<~  235 2.7.0 Authentication successful', r.stdout.replace('<- ', '<~ '))
        msgid = queued_id(re.search(r'250 2\.0\.0 Ok: queued as \S+', r.stdout).group(0))
        where, record = self.gw.find_record(msgid)
        self.assertIn(where, ('queue', 'active'), record)	# the relay may hold it
        self.assertIn('auth: PLAIN user=alice@example.org\n', record)
        self.assertIn('rcpt: pending <bob@example.net>', record)
        name = self.gw.find_mail('bob', msgid)
        data = self.gw.read_mail('bob', name).decode()
        self.assertIn('(Authenticated sender: alice@example.org)', data)
        self.assertIn('with ESMTPA id %s' % msgid, data)
        self.assertRegex(self.gw.read_log('smtpd'),
                         r'event=accepted id=%s .*auth=alice@example.org' % re.escape(msgid))
        self.assert_no_secret_logged()

    def test_swaks_login(self):
        r = subprocess.run(['swaks', '--server', '%s:%d' % self.gw.smtp_addr, '--auth', 'LOGIN',
                            '--auth-user', 'sam@example.org', '--auth-password', USERS['sam@example.org'][0],
                            '--from', 'sam@example.org', '--to', 'someone@example.net'],
                           capture_output=True, text=True, timeout=60)
        log(r.stdout[-800:])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        prompts = re.findall(r'<-  334 (\S+)', r.stdout)		# GNU SASL's "User Name", "Password"
        self.assertEqual([base64.b64decode(p) for p in prompts], [b'User Name', b'Password'])
        self.assertIn('<-  235 2.7.0', r.stdout)
        self.assertIn('event=auth session=', self.gw.read_log('smtpd'))
        self.assertRegex(self.gw.read_log('smtpd'), r'mechanism=LOGIN user=sam@example.org')
        self.assert_no_secret_logged()

    def test_smtplib_login(self):
        with smtplib.SMTP(*self.gw.smtp_addr, timeout=30) as s:
            s.ehlo('smtplib.example')
            self.assertEqual(s.esmtp_features['auth'].split(), ['SCRAM-SHA-256', 'PLAIN', 'LOGIN'])
            code, text = s.login('alice@example.org', USERS['alice@example.org'][0])
            self.assertEqual((code, text[:5]), (235, b'2.7.0'))
            refused = s.sendmail('anything@alice.example', ['dave@example.com'],
                                 b'Subject: smtplib\r\n\r\nhello\r\n')
            self.assertEqual(refused, {})

    def test_smtplib_wrong_password_535(self):
        with smtplib.SMTP(*self.gw.smtp_addr, timeout=30) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                s.login('alice@example.org', 'not the password')
            self.assertEqual(cm.exception.smtp_code, 535)
            self.assertTrue(cm.exception.smtp_error.startswith(b'5.7.8 '), cm.exception.smtp_error)

    def test_gsasl_scram(self):
        status, replies = gsasl(self.gw, 'SCRAM-SHA-256', 'alice@example.org', USERS['alice@example.org'][0])
        log('\n'.join(replies))
        self.assertEqual(status, 0, replies)
        self.assertEqual([r[:3] for r in replies if r[:3] in ('334', '235')], ['334', '334', '334', '235'])
        self.assertIn('235 2.7.0 Authentication successful', replies)
        status, replies = gsasl(self.gw, 'SCRAM-SHA-256', 'alice@example.org', 'wrong')
        self.assertNotEqual(status, 0)
        self.assertIn('535 5.7.8 Authentication credentials invalid', replies)
        status, replies = gsasl(self.gw, 'SCRAM-SHA-256', 'nobody@example.org', 'whatever')
        self.assertIn('535 5.7.8 Authentication credentials invalid', replies)
        self.assert_no_secret_logged()

    def test_msmtp_as_configured_by_a_user(self):
        rc = os.path.join(self.gw.dir, 'msmtprc')
        with open(rc, 'w') as f:
            f.write('defaults\nlogfile %s/msmtp.log\n\naccount gateway\nhost %s\nport %d\n'
                    'auth scram-sha-256\nuser alice@example.org\npassword %s\n'
                    'tls off\nfrom alice@example.org\n\naccount default : gateway\n'
                    % (self.gw.dir, self.gw.smtp_addr[0], self.gw.smtp_addr[1], USERS['alice@example.org'][0]))
        os.chmod(rc, 0o600)
        r = subprocess.run(['msmtp', '-C', rc, '-v', 'erin@example.com'], capture_output=True, text=True,
                           input='Subject: msmtp\n\nvia msmtp\n', timeout=60)
        log(r.stdout[-1500:])			# -v writes the dialogue to standard output
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('<-- 235 2.7.0', r.stdout)
        msgid = queued_id(re.search(r'250 2\.0\.0 Ok: queued as \S+', r.stdout).group(0))
        where, record = self.gw.find_record(msgid)
        self.assertIn('auth: SCRAM-SHA-256 user=alice@example.org', record)

    def test_bad_credentials_delay_grows_and_counts(self):
        """From 127.0.0.3: the delay doubles per failure of that client, also
        in its next session; the third failure in a session ends it (max_errors
        = 3).  127.0.0.4 starts again at the shortest delay."""
        c = RawSMTP(self.gw.smtp_addr, timeout=30, source='127.0.0.3')
        self.addCleanup(c.close)
        c.ehlo()
        for n in (1, 2):
            assert_reply(self, c.cmd('AUTH PLAIN ' + plain('alice@example.org', 'guess %d' % n)), 535, '5.7.8')
        c.send('AUTH PLAIN %s\r\n' % plain('alice@example.org', 'guess 3'))
        assert_reply(self, c.reply(), 535, '5.7.8', 'third failure')
        assert_reply(self, c.reply(), 421, '4.7.0', 'max_errors = 3 reached')
        self.assertTrue(c.wait_closed())
        c = RawSMTP(self.gw.smtp_addr, timeout=30, source='127.0.0.3')
        self.addCleanup(c.close)
        c.ehlo()
        assert_reply(self, c.cmd('AUTH LOGIN ' + b64('alice@example.org')), 334)
        assert_reply(self, c.cmd(b64('guess 4')), 535, '5.7.8', 'a new session of the same client')
        other = RawSMTP(self.gw.smtp_addr, timeout=30, source='127.0.0.4')
        self.addCleanup(other.close)
        other.ehlo()
        assert_reply(self, other.cmd('AUTH PLAIN ' + plain('alice@example.org', 'x')), 535, '5.7.8')
        text = self.gw.read_log('smtpd')
        for client, failures, ms in (('127.0.0.3', 1, 1000), ('127.0.0.3', 2, 2000), ('127.0.0.3', 3, 4000),
                                     ('127.0.0.3', 4, 8000), ('127.0.0.4', 1, 1000)):
            self.assertRegex(text, r'event=auth-failed session=\d+ client=%s mechanism=\S+ failures=%d '
                             r'delay_ms=%d ' % (re.escape(client), failures, ms))

    def test_not_base64_501(self):
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('AUTH PLAIN !!not*base64!!'), 501, '5.5.2')
        assert_reply(self, c.cmd('AUTH LOGIN'), 334)
        assert_reply(self, c.cmd('%%%'), 501, '5.5.2', 'LOGIN user not base64')
        assert_reply(self, c.cmd('NOOP'), 250)

    def test_cancel_501(self):
        c = self.raw()
        c.ehlo()
        r = c.cmd('AUTH LOGIN')
        assert_reply(self, r, 334)
        self.assertEqual(r.lines, [b64('User Name')])
        assert_reply(self, c.cmd('*'), 501, '5.0.0', 'cancelled')
        assert_reply(self, c.cmd('AUTH SCRAM-SHA-256'), 334)
        assert_reply(self, c.cmd('*'), 501, '5.0.0', 'cancelled')
        assert_reply(self, c.cmd('NOOP'), 250)

    def test_line_too_long_500_556(self):
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('AUTH PLAIN'), 334)
        assert_reply(self, c.cmd('A' * 3000), 500, '5.5.6', 'exchange line over max_line')
        assert_reply(self, c.cmd('NOOP'), 250, None, 'the session goes on, out of the exchange')
        c = self.raw()			# max_errors = 3 here: a fresh session
        c.ehlo()
        assert_reply(self, c.cmd('auth plain ' + 'A' * 3000), 500, '5.5.6', 'an AUTH command over max_line')
        assert_reply(self, c.cmd('NOOP ' + 'A' * 3000), 500, '5.5.2', 'another command over max_line')

    def test_unknown_mechanism_504(self):
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('AUTH CRAM-MD5'), 504, '5.5.4')
        assert_reply(self, c.cmd('AUTH X'), 504, '5.5.4')

    def test_bad_sequence_503(self):
        c = self.raw()
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain('alice@example.org', 'x')), 503, '5.5.1', 'before EHLO')
        assert_reply(self, c.cmd('HELO client.example'), 250)
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain('alice@example.org', 'x')), 503, '5.5.1', 'after HELO')
        c = self.authed()
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain('alice@example.org', 'x')), 503, '5.5.1', 'AUTH twice')
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250)
        c2 = self.raw()
        c2.ehlo()
        assert_reply(self, c2.cmd('MAIL FROM:<>'), 250)
        assert_reply(self, c2.cmd('AUTH PLAIN ' + plain('alice@example.org', USERS['alice@example.org'][0])),
                     503, '5.5.1', 'AUTH in a transaction')

    def test_relay_needs_auth_550(self):
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<x@example.com>'), 250)
        assert_reply(self, c.cmd('RCPT TO:<bob@example.net>'), 550, '5.7.1', 'relay without AUTH')
        assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250, '2.1.5', 'local domain from anyone')

    def test_restrict_sender_553(self):
        c = self.authed()
        assert_reply(self, c.cmd('MAIL FROM:<bob@example.org>'), 553, '5.7.1', 'not owned')
        self.assertIn('Sender address rejected: not owned by user', c.cmd('NOOP') and
                      self.gw.read_log('smtpd'))
        assert_reply(self, c.cmd('MAIL FROM:<anyone@ALICE.example>'), 250, '2.1.0', '@domain entry')
        assert_reply(self, c.cmd('RSET'), 250)
        assert_reply(self, c.cmd('MAIL FROM:<>'), 250, '2.1.0', 'the null sender')
        c = self.authed('sam@example.org')	# no from=: only its own name
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 553, '5.7.1')
        assert_reply(self, c.cmd('MAIL FROM:<sam@example.org>'), 250)

    def test_mail_auth_parameter(self):
        c = self.authed()
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org> AUTH=alice+2Bsub@example.org'), 250)
        assert_reply(self, c.cmd('RCPT TO:<zed@example.net>'), 250)
        assert_reply(self, c.cmd('DATA'), 354)
        r = c.cmd('Subject: auth param\r\n\r\nbody\r\n.')
        assert_reply(self, r, 250)
        where, record = self.gw.find_record(queued_id(r.text))
        self.assertIn('auth: PLAIN user=alice@example.org mail-auth=alice+sub@example.org\n', record)
        # From a client that did not authenticate, AUTH= is accepted and not trusted.
        c = self.raw()
        c.ehlo()
        assert_reply(self, c.cmd('MAIL FROM:<x@example.com> AUTH=<>'), 250)
        assert_reply(self, c.cmd('RSET'), 250)
        assert_reply(self, c.cmd('MAIL FROM:<x@example.com> AUTH=bad+zz'), 501, '5.5.4')

    def test_password_transition_432(self):
        password = USERS['carol'][0]
        status, replies = gsasl(self.gw, 'SCRAM-SHA-256', 'carol', password)
        log('\n'.join(replies))
        self.assertNotEqual(status, 0)
        self.assertIn('432 4.7.12 A password transition is needed', replies)
        derived = self.gw.path('auth', 'scram-derived')
        self.assertFalse(os.path.exists(derived) and 'carol ' in open(derived).read())
        # One PLAIN (here in plaintext: auth_plaintext = yes; on a real
        # listener over TLS) gives the daemon the password to derive from.
        with smtplib.SMTP(*self.gw.smtp_addr, timeout=30) as s:
            s.ehlo()
            s.login('carol', password)
        harness.wait_until(lambda: 'event=auth-transition step=stored' in self.gw.read_log('smtpd'), 10,
                           'the derived key stored')
        st = os.stat(derived)
        self.assertEqual(st.st_mode & 0o7777, 0o600)
        text = open(derived).read()
        self.assertIn('carol scram=4096:', text)
        self.assertNotIn(password, text)
        status, replies = gsasl(self.gw, 'SCRAM-SHA-256', 'carol', password)
        self.assertEqual(status, 0, replies)
        self.assertIn('235 2.7.0 Authentication successful', replies)
        # Durable: a restarted daemon still has it.
        self.gw.stop('smtpd')
        self.gw.start_smtpd()
        status, replies = gsasl(self.gw, 'SCRAM-SHA-256', 'carol', password)
        self.assertIn('235 2.7.0 Authentication successful', replies)
        # A new password (a new hash) makes the derived key stale: 432 again.
        r = subprocess.run([PASSWD, '-f', self.gw.users, 'add', '--stdin', '--crypt-only', 'carol'],
                           input='carol new\n', capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        mark = len(self.gw.read_log('smtpd'))
        self.gw.procs['smtpd'].send_signal(signal.SIGHUP)
        harness.wait_until(lambda: 'when=reload' in self.gw.read_log('smtpd')[mark:], 10, 'the reload')
        status, replies = gsasl(self.gw, 'SCRAM-SHA-256', 'carol', password)
        self.assertIn('432 4.7.12 A password transition is needed', replies)
        self.assert_no_secret_logged()


class AuthRequiredNoPlaintext(unittest.TestCase):
    """Two listeners of one daemon: mx (auth = no) and submission (auth =
    required, PLAIN and LOGIN not without TLS; no TLS in this branch)."""

    @classmethod
    def setUpClass(cls):
        cls.gw = new_gateway('authreq', auth=None, listeners={
            'mx': {'listen': '127.0.0.1:%d' % harness.free_port(), 'auth': 'no'},
            'submission': {'listen': '127.0.0.1:%d' % harness.free_port(), 'auth': 'required'}})
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.sub = cls.gw.listener_addr('submission')

    def test_mx_listener_offers_no_auth(self):
        c = RawSMTP(self.gw.listener_addr('mx'))
        self.addCleanup(c.close)
        self.assertFalse([l for l in c.ehlo().lines if l.startswith('AUTH')])
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain('alice@example.org', USERS['alice@example.org'][0])),
                     502, '5.5.1', 'AUTH where it is not offered')
        assert_reply(self, c.cmd('MAIL FROM:<x@example.com>'), 250, '2.1.0', 'no AUTH needed on mx')

    def test_538_and_530(self):
        c = RawSMTP(self.sub)
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertIn('AUTH SCRAM-SHA-256', r.lines, 'PLAIN and LOGIN are not offered in plaintext')
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 530, '5.7.0', 'MAIL before AUTH')
        self.assertIn('Authentication required', c.cmd('NOOP') and self.gw.read_log('smtpd'))
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain('alice@example.org', USERS['alice@example.org'][0])),
                     538, '5.7.11', 'PLAIN in plaintext')
        assert_reply(self, c.cmd('AUTH LOGIN'), 538, '5.7.11', 'LOGIN in plaintext')

    def test_scram_then_mail(self):
        status, replies = gsasl(self.sub, 'SCRAM-SHA-256', 'sam@example.org', USERS['sam@example.org'][0])
        self.assertEqual(status, 0, replies)
        self.assertIn('235 2.7.0 Authentication successful', replies)
        # gsasl ends the session; swaks cannot SCRAM, so the MAIL after it is
        # shown with msmtp.
        rc = os.path.join(self.gw.dir, 'msmtprc')
        with open(rc, 'w') as f:
            f.write('account default\nhost %s\nport %d\nauth scram-sha-256\nuser sam@example.org\n'
                    'password %s\ntls off\nfrom sam@example.org\n'
                    % (self.sub[0], self.sub[1], USERS['sam@example.org'][0]))
        os.chmod(rc, 0o600)
        r = subprocess.run(['msmtp', '-C', rc, 'x@example.com'], capture_output=True, text=True,
                           input='Subject: required\n\nbody\n', timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)


class AuthMinimumMechanism(unittest.TestCase):
    """auth_min_mechanism = SCRAM-SHA-256: PLAIN and LOGIN are too weak (534)."""

    def test_534(self):
        gw = new_gateway('authmin', auth_min_mechanism='SCRAM-SHA-256', **{'smtpd.auth_plaintext': True})
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        c = RawSMTP(gw.smtp_addr)
        self.addCleanup(c.close)
        self.assertIn('AUTH SCRAM-SHA-256', c.ehlo().lines)
        assert_reply(self, c.cmd('AUTH PLAIN ' + plain('alice@example.org', USERS['alice@example.org'][0])),
                     534, '5.7.9')
        assert_reply(self, c.cmd('AUTH LOGIN'), 534, '5.7.9')
        status, replies = gsasl(gw, 'SCRAM-SHA-256', 'alice@example.org', USERS['alice@example.org'][0])
        self.assertIn('235 2.7.0 Authentication successful', replies)


class AuthUsersUnreadable(unittest.TestCase):
    """The users file cannot be read: 454 4.7.0; SIGHUP with it fixed; a broken one keeps the old."""

    def test_454_and_reload(self):
        gw = new_gateway('auth454', **{'smtpd.auth_plaintext': True})
        self.addCleanup(gw.cleanup)
        os.chmod(gw.users, 0o644)
        gw.start_smtpd()
        self.assertIn('mode 0644 lets group or others read it (chmod 600)', gw.read_log('smtpd'))
        login = 'AUTH PLAIN ' + plain('alice@example.org', USERS['alice@example.org'][0])
        with RawSMTP(gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd(login), 454, '4.7.0', 'users file unreadable')
            status, replies = gsasl(gw, 'SCRAM-SHA-256', 'alice@example.org', USERS['alice@example.org'][0])
            self.assertIn('454 4.7.0 Temporary authentication failure', replies)
            for _ in range(25):		# 454 is not the client's error: no 421 for max_errors
                assert_reply(self, c.cmd(login), 454, '4.7.0')
        os.chmod(gw.users, 0o600)
        mark = len(gw.read_log('smtpd'))
        gw.procs['smtpd'].send_signal(signal.SIGHUP)
        harness.wait_until(lambda: 'event=auth-users when=reload' in gw.read_log('smtpd')[mark:], 10, 'reload')
        with RawSMTP(gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd(login), 235, '2.7.0', 'after SIGHUP')
        with open(gw.users, 'a') as f:
            f.write('broken password=clear\n')
        mark = len(gw.read_log('smtpd'))
        gw.procs['smtpd'].send_signal(signal.SIGHUP)
        harness.wait_until(lambda: 'keeping the users loaded before' in gw.read_log('smtpd')[mark:], 10,
                           'the refused reload')
        self.assertIn('users:5: unknown key', gw.read_log('smtpd')[mark:])
        with RawSMTP(gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd(login), 235, '2.7.0', 'the users loaded before')


class OpenRelay(unittest.TestCase):
    """nmap's smtp-open-relay (its 16 address forms) against an MX listener:
    AUTH offered, empty relay_networks, on port 25 of 127.0.0.7 (the
    script only looks at SMTP ports)."""

    @unittest.skipUnless(shutil.which('nmap') and harness.IS_ROOT, 'needs nmap and root (port 25)')
    def test_nmap_finds_no_open_relay(self):
        gw = new_gateway('relay', local_domains='mx.example', hostname='mx.example', listen='127.0.0.7:25')
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        r = subprocess.run(['nmap', '-Pn', '-n', '-p', '25', '--script', 'smtp-open-relay',
                            '--script-args', 'smtp-open-relay.ip=127.0.0.7', '127.0.0.7'],
                           capture_output=True, text=True, timeout=300)
        log(r.stdout)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("smtp-open-relay: Server doesn't seem to be an open relay, all tests failed", r.stdout)
        text = gw.read_log('smtpd')
        refused = re.findall(r'reply="(550 5\.7\.1 .*Relay access denied|553 5\.1\.3 .*)"', text)
        log('recipients refused: %d' % len(refused))
        self.assertEqual(len(refused), 16, 'one refusal per address form of the script')
        self.assertNotIn('new=rcpt', text, 'a recipient was accepted')


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, PASSWD))
