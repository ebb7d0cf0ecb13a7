#!/usr/bin/python3
"""test_relay_tls - the relay's TLS and AUTH against a real submission peer.

A private Postfix instance (tests/integration/peers.py) is the smarthost:
STARTTLS with a certificate from a CA this test makes with openssl, Cyrus
SASL sasldb offering PLAIN LOGIN SCRAM-SHA-256, an implicit-TLS service
(smtpd_tls_wrappermode=yes), a service without STARTTLS and one whose
certificate names another host.  Messages reach the gateway by SMTP and
leave through its relay:

- SCRAM-SHA-256 over STARTTLS under verify (the default with credentials):
  the message arrives byte for byte in the peer's Maildir, Postfix logs
  sasl_method=SCRAM-SHA-256, the record says last-tls ... verified=yes
  and last-auth, and no log holds the password;
- a second message takes the idle connection of the first: reused=yes,
  one connection and one SCRAM login for both, both records say last-tls
  and last-auth, and at shutdown the peer logs rset=1 quit=1 for it;
- PLAIN over implicit TLS (tls = wrapper); LOGIN where only LOGIN is offered;
- no PLAIN without TLS unless auth_plaintext = yes;
- policy may against a certificate for another name: delivered, verified=no;
- policy encrypt against the service without STARTTLS: deferred with
  4.7.0 and the reason, the peer saw no MAIL;
- policy verify against the certificate for another name: deferred with
  the verification failure, the peer saw no MAIL;
- a wrong password: deferred with the server's 535, logged at level
  error; fixed credentials file + SIGHUP: delivered; a reload of a file
  others may read keeps the old credentials;
- a credentials file others may read: the daemon does not start and
  names the file;
- per-route policies ([routes] target tls=... auth_plaintext=...), under
  [relay] tls = verify, three routes to one service without STARTTLS that
  offers PLAIN: tls=encrypt deferred with 4.7.x and no MAIL or AUTH;
  tls=none auth_plaintext=yes delivered with PLAIN; tls=none alone
  deferred with 454 (auth_plaintext = no) in a second message, though the
  authenticated connection of none.test to the same address is idle (no
  reuse across policies);
- routing meets TLS (the test unbound of dns.py names the peer): a
  host-name smarthost [tlspeer.ZONE]:port whose certificate names only
  tlspeer.ZONE, under verify: delivered, verified=yes peer=tlspeer.ZONE
  (checked against the name, not 127.0.0.1); the same name on a service
  with a certificate for other.test: deferred; an MX route whose first MX
  (tlsbad, same address) fails verification moves on to the second
  (tlspeer), with the credentials line of the route as written;
- a hostile raw-socket server that writes "220 Ready to start TLS" and
  "250 injected" in one write: deferred (response injection), nothing
  sent after STARTTLS.
Skipped (77) without root or the packages of scripts/deps.sh.
"""

import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns
import harness
import peers
from harness import log, parse_record, wait_until

USER = 'me@mail.test'
PASSWORD = 'c0rrect horse: battery'
RCPT = 'box@' + peers.DEST_DOMAIN
OUTCOME_WAIT = 20.0
# test_per_route_policies: one route each, all to the service without STARTTLS
ROUTE_DOMAINS = ('enc.test', 'none.test', 'noplain.test')


def setUpModule():
    why = peers.missing()
    if why:
        raise unittest.SkipTest(why)


class RelayTLSTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='spoolgate-peers-')
        os.chmod(cls.dir, 0o755)
        cls.ca = peers.TestCA(os.path.join(cls.dir, 'ca'))
        os.chmod(cls.ca.dir, 0o755)
        cert = cls.ca.issue('mx', dns=['mx.test'], ips=['127.0.0.1'])
        other = cls.ca.issue('other', dns=['other.test'])
        named = cls.ca.issue('named', dns=[dns.fqdn('tlspeer').rstrip('.')])	# no IP: only the name checks out
        cls.pf = peers.Postfix(os.path.join(cls.dir, 'postfix'), cls.ca, cert, {USER: PASSWORD}, [
            peers.Service('starttls'),
            peers.Service('smtps', wrapper=True, mechs='plain'),
            peers.Service('plain', tls='none', auth=False),
            peers.Service('other', cert='other'),
            peers.Service('plainauth', tls='none', mechs='plain', auth_only=False),
            peers.Service('login', mechs='login'),
            peers.Service('named', cert='named'),
        ], extra_certs={'other': other, 'named': named},
            extra_main={'virtual_mailbox_domains': ', '.join([peers.DEST_DOMAIN] + list(ROUTE_DOMAINS))})
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.addClassCleanup(cls.pf.stop)
        cls.pf.start()

    def setUp(self):
        self.gw = None

    def tearDown(self):
        if self.gw is not None:
            self.gw.cleanup()

    # ------------------------------------------------------------ helpers

    def gateway(self, service, password=PASSWORD, **cfg):
        """A gateway whose smarthost is the peer's service; credentials unless password is None."""
        cfg.setdefault('retry_min', 3600)
        cfg.setdefault('retry_max', 3600)
        gw = harness.Instance('tls', smarthost=service if isinstance(service, str) else service.addr,
                              tls_ca_file=self.ca.cert, **cfg)
        self.gw = gw
        if password is not None and 'credentials' not in cfg:
            gw.cfg['credentials'] = self.write_credentials(gw, password)
        gw.start_smtpd()
        return gw

    def write_credentials(self, gw, password, mode=0o600, name='credentials'):
        path = os.path.join(gw.dir, name)
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            f.write('# route  user:password\n%s %s:%s\n' % (gw.cfg['smarthost'], USER, password))
        os.chmod(tmp, mode)
        if harness.IS_ROOT:
            pw = pwd.getpwnam(harness.USER)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.rename(tmp, path)
        return path

    def send(self, gw, tag, filler=''):
        """One message through the gateway's SMTP listener; returns its id."""
        # Complete headers: Postfix adds a missing Date: for an authenticated client.
        body = ('From: backup@gw.example\r\nTo: %s\r\nSubject: tls %s\r\n'
                'Date: Wed, 02 Dec 2026 06:00:00 +0000\r\n'
                'Message-ID: <%s@gw.example>\r\n\r\nreport %s\r\n.leading dot\r\n%s'
                'tail line\r\n' % (RCPT, tag, tag, tag, filler)).encode()
        with smtplib.SMTP(*gw.smtp_addr, timeout=10) as s:
            s.ehlo('client.example')
            s.mail('backup@gw.example')
            s.rcpt(RCPT)
            code, resp = s.data(body)
            self.assertEqual(code, 250, resp)
        return harness.queued_id(resp)

    def send_to(self, gw, tag, rcpts):
        """One message with this tag to rcpts through the gateway's SMTP listener; returns its id."""
        body = ('From: backup@gw.example\r\nTo: %s\r\nSubject: routes %s\r\n'
                'Date: Wed, 02 Dec 2026 06:00:00 +0000\r\nMessage-ID: <%s@gw.example>\r\n\r\nbody\r\n'
                % (rcpts[0], tag, tag)).encode()
        with smtplib.SMTP(*gw.smtp_addr, timeout=10) as s:
            s.ehlo('client.example')
            s.mail('backup@gw.example')
            for r in rcpts:
                s.rcpt(r)
            code, resp = s.data(body)
            self.assertEqual(code, 250, resp)
        return harness.queued_id(resp)

    def outcome(self, gw, msgid, want):
        """Waits for the record in sent/ (want='sent') or deferred (want='queue', attempts >= 1)."""
        def ready():
            where, text = gw.find_record(msgid)
            if where == want and (want != 'queue' or int(parse_record(text).get('attempts', 0)) >= 1):
                return parse_record(text)
            return None
        try:
            return wait_until(ready, OUTCOME_WAIT, 'message %s in %s/' % (msgid, want))
        except AssertionError:
            where, text = gw.find_record(msgid)
            raise AssertionError('message %s not in %s/ but in %s/:\n%s' % (msgid, want, where, text))

    def stored(self, gw, msgid, rec):
        with open(gw.path('data', msgid), 'rb') as f:
            return f.read()[int(rec['data-offset']):]

    def arrived(self, tag):
        """The peer's Maildir file of the message with this tag."""
        def find():
            for p in self.pf.delivered():
                with open(p, 'rb') as f:
                    data = f.read()
                if ('<%s@gw.example>' % tag).encode() in data:
                    return data
            return None
        return wait_until(find, OUTCOME_WAIT, 'the message %s in the peer\'s Maildir' % tag)

    def assert_no_password_logged(self, gw):
        self.assertNotIn(PASSWORD, gw.read_log('smtpd'))
        self.assertNotIn('horse', gw.read_log('smtpd'))

    def assert_peer_saw_no_mail(self, service, since):
        lines = [l for l in self.pf.service_log(service).splitlines()[since:]]
        disc = [l for l in lines if 'disconnect from' in l]
        self.assertTrue(disc, 'the peer %s saw no connection:\n%s' % (service, '\n'.join(lines)))
        for l in disc:
            self.assertNotIn(' mail=', l, 'the peer %s got a MAIL command: %s' % (service, l))
        self.assertFalse([l for l in lines if 'from=<' in l], 'the peer queued something')

    def service_lines(self, service):
        return len(self.pf.service_log(service).splitlines())

    # ------------------------------------------------------------ delivery

    def test_scram_sha256_over_starttls_verified(self):
        svc = self.pf.services['starttls']
        gw = self.gateway(svc)		# tls unset: verify, because there are credentials
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'sent')
        data = self.arrived(tag)
        stored = self.stored(gw, msgid, rec)
        self.assertTrue(data.endswith(stored), 'not byte for byte:\nsent %r\narrived %r' % (stored, data))
        self.assertIn(b'.leading dot\n', data)
        self.assertRegex(rec.get('last-tls', ''), r'^TLSv1\.[23] \S+ verified=yes peer=127\.0\.0\.1$')
        self.assertEqual(rec.get('last-auth'), 'SCRAM-SHA-256 user=%s' % USER)
        self.assertEqual(len(rec['attempt']), 1, rec['attempt'])
        self.assertRegex(rec['attempt'][0], r'^\d+ host=127\.0\.0\.1:%d tls=TLSv1\.[23] cipher=\S+ verified=yes '
                         r'reply=250 2\.0\.0 ' % svc.port)
        wait_until(lambda: 'sasl_method=SCRAM-SHA-256, sasl_username=%s' % USER in self.pf.service_log('starttls'),
                   5, 'Postfix logging the SCRAM login')
        logtext = gw.read_log('smtpd')
        self.assertRegex(logtext, r'event=relay-tls id=%s host=\S+ policy=verify tls=TLSv1\.[23] .*verified=yes'
                         % re.escape(msgid))
        self.assertRegex(logtext, r'event=relay-auth id=%s .*mechanism=SCRAM-SHA-256 user=%s'
                         % (re.escape(msgid), re.escape(USER)))
        self.assert_no_password_logged(gw)

    def test_connection_reused_with_its_tls_and_auth(self):
        """a second message takes the idle TLS+AUTH connection: RSET, no second login, QUIT at shutdown"""
        svc = self.pf.services['starttls']
        since = self.service_lines('starttls')
        gw = self.gateway(svc, connection_idle_timeout=120)
        recs = []
        for _ in range(2):
            tag = uuid.uuid4().hex[:12]
            msgid = self.send(gw, tag)
            recs.append((msgid, self.outcome(gw, msgid, 'sent')))
            self.arrived(tag)
        logtext = gw.read_log('smtpd')
        self.assertRegex(logtext, r'event=relay-attempt id=%s .*reused=no' % re.escape(recs[0][0]))
        self.assertRegex(logtext, r'event=relay-attempt id=%s .*reused=yes conn=1\b' % re.escape(recs[1][0]))
        for msgid, rec in recs:		# the reused connection's TLS and AUTH are this attempt's too
            self.assertRegex(rec.get('last-tls', ''), r'^TLSv1\.[23] \S+ verified=yes peer=127\.0\.0\.1$')
            self.assertEqual(rec.get('last-auth'), 'SCRAM-SHA-256 user=%s' % USER)
        new_lines = lambda: self.pf.service_log('starttls').splitlines()[since:]
        self.assertEqual(len([l for l in new_lines() if 'TLS connection established' in l]), 1,
                         'a second TLS session: the first was not reused:\n' + '\n'.join(new_lines()))
        gw.stop('smtpd')
        disc = wait_until(lambda: [l for l in new_lines() if 'disconnect from' in l], 5,
                          'the peer logging the disconnect')
        self.assertRegex(disc[-1], r' starttls=1 auth=1 mail=2 rcpt=2 data=2 rset=1 quit=1 ')
        self.assert_no_password_logged(gw)

    def test_plain_over_implicit_tls(self):
        svc = self.pf.services['smtps']
        gw = self.gateway(svc, tls='wrapper')
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'sent')
        data = self.arrived(tag)
        self.assertTrue(data.endswith(self.stored(gw, msgid, rec)))
        self.assertRegex(rec.get('last-tls', ''), r'^TLSv1\.[23] \S+ verified=yes peer=127\.0\.0\.1$')
        self.assertEqual(rec.get('last-auth'), 'PLAIN user=%s' % USER)
        wait_until(lambda: 'sasl_method=PLAIN, sasl_username=%s' % USER in self.pf.service_log('smtps'),
                   5, 'Postfix logging the PLAIN login on the implicit-TLS service')
        self.assert_no_password_logged(gw)

    def test_login_when_only_login_is_offered(self):
        svc = self.pf.services['login']
        gw = self.gateway(svc)
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'sent')
        self.assertEqual(rec.get('last-auth'), 'LOGIN user=%s' % USER)
        self.assertTrue(self.arrived(tag).endswith(self.stored(gw, msgid, rec)))
        wait_until(lambda: 'sasl_method=LOGIN, sasl_username=%s' % USER in self.pf.service_log('login'),
                   5, 'Postfix logging the LOGIN login')
        self.assert_no_password_logged(gw)

    # ------------------------------------------------------------ refusals

    def test_encrypt_without_starttls_is_deferred_never_plaintext(self):
        svc = self.pf.services['plain']
        since = self.service_lines('plain')
        gw = self.gateway(svc, password=None, tls='encrypt')
        msgid = self.send(gw, uuid.uuid4().hex[:12])
        rec = self.outcome(gw, msgid, 'queue')
        state, _, reply = rec['rcpt'][0]
        self.assertEqual(state, 'pending')
        self.assertRegex(reply, r'^4\d\d 4\.7\.\d .*TLS is required \(policy encrypt\), but 127\.0\.0\.1:\d+ '
                         r'did not offer STARTTLS')
        self.assertNotIn('last-tls', rec)
        wait_until(lambda: 'disconnect from' in '\n'.join(self.pf.service_log('plain').splitlines()[since:]),
                   5, 'the peer logging the disconnect')
        self.assert_peer_saw_no_mail('plain', since)

    def test_verify_certificate_for_another_name_is_deferred(self):
        svc = self.pf.services['other']
        since = self.service_lines('other')
        gw = self.gateway(svc, tls='verify')
        msgid = self.send(gw, uuid.uuid4().hex[:12])
        rec = self.outcome(gw, msgid, 'queue')
        state, _, reply = rec['rcpt'][0]
        self.assertEqual(state, 'pending')
        self.assertRegex(reply, r'^4\d\d 4\.7\.\d .*TLS handshake with 127\.0\.0\.1:\d+ failed \(policy verify\): '
                         r'certificate verify failed: .*mismatch.*other\.test')
        self.assertNotIn('last-auth', rec)
        wait_until(lambda: 'disconnect from' in '\n'.join(self.pf.service_log('other').splitlines()[since:]),
                   5, 'the peer logging the disconnect')
        self.assert_peer_saw_no_mail('other', since)
        self.assertFalse([l for l in self.pf.service_log('other').splitlines()[since:] if 'sasl_' in l])

    def test_may_accepts_any_certificate_unverified(self):
        svc = self.pf.services['other']
        gw = self.gateway(svc, tls='may')
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'sent')
        self.assertRegex(rec.get('last-tls', ''), r' verified=no peer=127\.0\.0\.1$')
        self.arrived(tag)

    # ------------------------------------------------------------ credentials

    def test_wrong_password_defers_then_sighup_delivers(self):
        svc = self.pf.services['starttls']
        gw = self.gateway(svc, password='wrong password', retry_min=1, retry_max=1)
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'queue')
        state, _, reply = rec['rcpt'][0]
        self.assertEqual(state, 'pending')
        self.assertRegex(reply, r'^454 4\.7\.0 authentication failed: 127\.0\.0\.1:\d+ said: 535 5\.7\.8 ')
        self.assertRegex(gw.read_log('smtpd'), r'level=error event=relay-auth-failed id=%s .*reply="535 5\.7\.8'
                         % re.escape(msgid))
        self.assertNotIn('wrong password', gw.read_log('smtpd'))
        # A reload of a file others may read changes nothing and says why.
        bad = self.write_credentials(gw, PASSWORD, mode=0o644)
        mark = len(gw.read_log('smtpd'))
        gw.procs['smtpd'].send_signal(signal.SIGHUP)
        wait_until(lambda: re.search(r'level=error event=relay-credentials path=%s when=reload .*0644.*'
                                     r'keeping the credentials loaded before' % re.escape(bad),
                                     gw.read_log('smtpd')[mark:]), 5, 'the refused reload logged')
        time.sleep(2.5)		# retries with the old password go on failing
        self.assertEqual(gw.find_record(msgid)[0], 'queue')
        # Fixed: the queue drains without a restart.
        self.write_credentials(gw, PASSWORD)
        gw.procs['smtpd'].send_signal(signal.SIGHUP)
        rec = self.outcome(gw, msgid, 'sent')
        self.assertEqual(rec.get('last-auth'), 'SCRAM-SHA-256 user=%s' % USER)
        self.assertTrue(self.arrived(tag).endswith(self.stored(gw, msgid, rec)))
        self.assertIsNone(gw.procs['smtpd'].poll(), 'the daemon restarted or died')

    def test_no_password_in_plaintext_unless_auth_plaintext(self):
        svc = self.pf.services['plainauth']	# no STARTTLS, AUTH PLAIN only
        since = self.service_lines('plainauth')
        gw = self.gateway(svc, tls='none')
        msgid = self.send(gw, uuid.uuid4().hex[:12])
        rec = self.outcome(gw, msgid, 'queue')
        self.assertRegex(rec['rcpt'][0][2], r'^454 4\.7\.0 .*offers only AUTH PLAIN, which would send the password '
                         r'without TLS \(auth_plaintext = no\)')
        wait_until(lambda: 'disconnect from' in '\n'.join(self.pf.service_log('plainauth').splitlines()[since:]),
                   5, 'the peer logging the disconnect')
        self.assertNotIn('auth=', '\n'.join(self.pf.service_log('plainauth').splitlines()[since:]))
        self.assert_peer_saw_no_mail('plainauth', since)
        gw.cleanup()
        # The route says so explicitly: PLAIN without TLS.
        gw = self.gateway(svc, tls='none', auth_plaintext=True)
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'sent')
        self.assertEqual(rec.get('last-auth'), 'PLAIN user=%s' % USER)
        self.assertNotIn('last-tls', rec)
        self.arrived(tag)

    def test_per_route_policies(self):
        svc = self.pf.services['plainauth']	# no STARTTLS, AUTH PLAIN before TLS
        since = self.service_lines('plainauth')
        target = '[127.0.0.1]:%d' % svc.port
        gw = harness.Instance('tls', smarthost=self.pf.services['starttls'].addr, tls='verify',
                              tls_ca_file=self.ca.cert, retry_min=3600, retry_max=3600,
                              connection_idle_timeout=120, routes={
                                  'enc.test': target + ' tls=encrypt',
                                  'none.test': target + ' tls=none auth_plaintext=yes',
                                  'noplain.test': target + '   TLS=None',
                              })
        self.gw = gw
        with open(os.path.join(gw.dir, 'creds'), 'w') as f:		# one line: the target without options
            f.write('%s %s:%s\n' % (target, USER, PASSWORD))
        os.chmod(f.name, 0o600)
        if harness.IS_ROOT:
            pw = pwd.getpwnam(harness.USER)
            os.chown(f.name, pw.pw_uid, pw.pw_gid)
        gw.cfg['credentials'] = f.name
        gw.start_smtpd()
        tag = uuid.uuid4().hex[:12]
        first = self.send_to(gw, tag, ['box@enc.test', 'box@none.test'])
        def settled():
            where, text = gw.find_record(first)
            rec = parse_record(text) if text else {}
            states = [r[0] for r in rec.get('rcpt', [])]
            return rec if where == 'queue' and 'sent' in states and int(rec.get('attempts', 0)) >= 1 else None
        rec = wait_until(settled, OUTCOME_WAIT, 'message %s delivered to none.test only' % first)
        by = {r[1].split('@')[1]: r for r in rec['rcpt']}
        self.assertEqual(by['enc.test'][0], 'pending')
        self.assertRegex(by['enc.test'][2], r'^4\d\d 4\.7\.\d .*TLS is required \(policy encrypt\), but '
                         r'127\.0\.0\.1:%d did not offer STARTTLS' % svc.port)
        self.assertEqual(by['none.test'][0], 'sent')
        self.arrived(tag)
        # One attempt: line per destination, none with TLS; the delivered one says its 250.
        self.assertEqual(len(rec['attempt']), 2, rec['attempt'])
        for a in rec['attempt']:
            self.assertRegex(a, r'^\d+ host=127\.0\.0\.1:%d tls=no cipher=- verified=no reply=\d{3} ' % svc.port)
        self.assertEqual(len([a for a in rec['attempt'] if ' reply=250 ' in a]), 1, rec['attempt'])
        # The authenticated connection of none.test is idle now (connection_idle_timeout = 120);
        # noplain.test, same address and credentials but another policy, must not take it.
        wait_until(lambda: 'event=relay-conn-idle' in gw.read_log('smtpd'), 5, 'the connection going idle')
        second = self.send_to(gw, uuid.uuid4().hex[:12], ['box@noplain.test'])
        rec = self.outcome(gw, second, 'queue')
        self.assertEqual(rec['rcpt'][0][0], 'pending')
        self.assertRegex(rec['rcpt'][0][2], r'^454 4\.7\.0 .*would send the password without TLS '
                         r'\(auth_plaintext = no\)')
        self.assertRegex(gw.read_log('smtpd'), r'event=relay-attempt id=%s .* reused=no' % re.escape(second))
        gw.cleanup()
        self.gw = None
        # The peer: three sessions, MAIL and AUTH on the none.test one only (a port probe says no EHLO).
        lines = self.pf.service_log('plainauth').splitlines()[since:]
        disc = [l for l in lines if 'disconnect from' in l and ' ehlo=' in l]
        self.assertEqual(len(disc), 3, '\n'.join(lines))
        with_mail = [l for l in disc if ' mail=' in l]
        self.assertEqual(len(with_mail), 1, '\n'.join(disc))
        self.assertIn(' auth=1 ', with_mail[0])
        self.assertEqual(len([l for l in disc if ' auth=' in l]), 1, '\n'.join(disc))
        self.assertEqual(len([l for l in lines if 'sasl_method=PLAIN' in l]), 1, '\n'.join(lines))

    def test_credentials_readable_by_others_refuse_start(self):
        gw = harness.Instance('tls', smarthost=self.pf.services['starttls'].addr)
        self.gw = gw
        gw.cfg['credentials'] = self.write_credentials(gw, PASSWORD, mode=0o640)
        with self.assertRaises(harness.DaemonError) as cm:
            gw.start_smtpd()
        self.assertIn(gw.cfg['credentials'], str(cm.exception))
        self.assertRegex(str(cm.exception), r'mode 0640 lets group or others read it')

    # ------------------------------------------------------------ hostile peer

    # ------------------------------------------------------------ routing and TLS

    def resolver(self):
        server = dns.TestDNS()
        server.start()
        self.addCleanup(server.stop)
        return server.addr

    def test_named_smarthost_verified_by_its_name(self):
        port = self.pf.services['named'].port
        host = dns.fqdn('tlspeer').rstrip('.')
        gw = self.gateway('[%s]:%d' % (host, port), tls='verify', resolver=self.resolver(), dns_timeout=5)
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'sent')
        self.arrived(tag)
        self.assertEqual(rec.get('last-host'), '%s[127.0.0.1]:%d' % (host, port))
        self.assertRegex(rec.get('last-tls', ''), r'^TLSv1\.[23] \S+ verified=yes peer=%s$' % re.escape(host))
        self.assertRegex(rec.get('last-auth', ''), r' user=%s$' % re.escape(USER))

    def test_named_smarthost_certificate_for_another_name_is_deferred(self):
        port = self.pf.services['other'].port
        host = dns.fqdn('tlspeer').rstrip('.')
        since = self.service_lines('other')
        gw = self.gateway('[%s]:%d' % (host, port), tls='verify', resolver=self.resolver(), dns_timeout=5)
        msgid = self.send(gw, uuid.uuid4().hex[:12])
        rec = self.outcome(gw, msgid, 'queue')
        state, _, reply = rec['rcpt'][0]
        self.assertEqual(state, 'pending')
        self.assertRegex(reply, r'^4\d\d 4\.7\.\d .*TLS handshake with %s\[127\.0\.0\.1\]:%d failed '
                         r'\(policy verify\): certificate verify failed: .*mismatch' % (re.escape(host), port))
        self.assertNotIn('last-tls', rec)
        wait_until(lambda: 'disconnect from' in '\n'.join(self.pf.service_log('other').splitlines()[since:]),
                   5, 'the peer logging the disconnect')
        self.assert_peer_saw_no_mail('other', since)

    def test_mx_that_fails_verification_moves_on_to_the_next(self):
        port = self.pf.services['named'].port
        bad, good = dns.fqdn('tlsbad').rstrip('.'), dns.fqdn('tlspeer').rstrip('.')
        gw = self.gateway('%s:%d' % (dns.fqdn('tlsmx').rstrip('.'), port), tls='verify',
                          resolver=self.resolver(), dns_timeout=5)
        tag = uuid.uuid4().hex[:12]
        msgid = self.send(gw, tag)
        rec = self.outcome(gw, msgid, 'sent')
        self.arrived(tag)
        self.assertEqual(rec.get('last-host'), '%s[127.0.0.1]:%d' % (good, port))
        self.assertRegex(rec.get('last-tls', ''), r' verified=yes peer=%s$' % re.escape(good))
        self.assertRegex(rec.get('last-auth', ''), r' user=%s$' % re.escape(USER))
        self.assertRegex(gw.read_log('smtpd'), r'event=relay-next-host id=%s host=%s\[127\.0\.0\.1\]:%d '
                         r'state=handshake why=".*certificate verify failed.*mismatch'
                         % (re.escape(msgid), re.escape(bad), port))

    def test_response_injection_after_starttls_is_refused(self):
        srv = InjectingServer()
        self.addCleanup(srv.close)
        gw = self.gateway('127.0.0.1:%d' % srv.port, password=None, tls='encrypt')
        msgid = self.send(gw, uuid.uuid4().hex[:12])
        rec = self.outcome(gw, msgid, 'queue')
        state, _, reply = rec['rcpt'][0]
        self.assertEqual(state, 'pending')
        self.assertRegex(reply, r'^4\d\d 4\.7\.\d .*sent 14 octets after its 220 to STARTTLS, before the TLS '
                         r'handshake \(response injection\)')
        wait_until(lambda: srv.done.is_set(), 5, 'the hostile server to see the connection end')
        self.assertEqual(srv.after_starttls, b'', 'the client sent something after the injected 220')

    def test_pipelined_group_is_one_tls_record(self):
        # libevent's OpenSSL filter makes a record of every write: MAIL, RCPT
        # and DATA written apart cost the peer's reply a delayed-ACK wait.
        srv = RecordServer(os.path.join(self.ca.dir, 'mx.pem'), os.path.join(self.ca.dir, 'mx.key'))
        self.addCleanup(srv.close)
        gw = self.gateway('127.0.0.1:%d' % srv.port, password=None, tls='encrypt')
        msgid = self.send(gw, uuid.uuid4().hex[:12])
        self.outcome(gw, msgid, 'sent')
        group = [r for r in srv.records if r.startswith(b'MAIL FROM:')]
        self.assertEqual(len(group), 1, srv.records)
        self.assertRegex(group[0], rb'^MAIL FROM:<[^\r]*>[^\r]*\r\nRCPT TO:<%s>\r\nDATA\r\n$' % RCPT.encode(),
                         'MAIL, RCPT and DATA not in one record')

    def test_reused_connection_rset_in_the_group_and_dot_with_the_body(self):
        # On a reused connection RSET opens the pipelined group (RFC 2920):
        # one record, no round trip of its own (fails with RSET written
        # alone).  The end of data goes in the record of the body's last
        # octets, after one chunk and after a refill.
        srv = RecordServer(os.path.join(self.ca.dir, 'mx.pem'), os.path.join(self.ca.dir, 'mx.key'))
        self.addCleanup(srv.close)
        gw = self.gateway('127.0.0.1:%d' % srv.port, password=None, tls='encrypt', connection_idle_timeout=120)
        # The second message is longer than a chunk of the body (64 KB): its end goes out from the refill.
        for filler in ('', ('filler %s\r\n' % ('x' * 990)) * 100):
            msgid = self.send(gw, uuid.uuid4().hex[:12], filler)
            self.outcome(gw, msgid, 'sent')
        self.assertRegex(gw.read_log('smtpd'), r'event=relay-attempt id=%s .*reused=yes' % re.escape(msgid))
        group = [r for r in srv.records if r.startswith(b'RSET')]
        self.assertEqual(len(group), 1, srv.records)
        self.assertRegex(group[0], rb'^RSET\r\nMAIL FROM:<[^\r]*>[^\r]*\r\nRCPT TO:<%s>\r\nDATA\r\n$'
                         % RCPT.encode(), 'RSET, MAIL, RCPT and DATA not in one record')
        bodies = [r for r in srv.records if b'tail line' in r]
        self.assertEqual(len(bodies), 2, srv.records)
        for r in bodies:
            self.assertTrue(r.endswith(b'tail line\r\n.\r\n'), 'the dot not with the body: %r' % srv.records)
        self.assertNotIn(b'.\r\n', srv.records, 'the end of data in a record of its own')


class OneShotServer:
    """A loopback SMTP server for one connection, on a thread: it greets,
    then talk(conn, f) plays the rest (f: the connection read by lines)."""

    greeting = b'220 oneshot.test ESMTP\r\n'

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            f = conn.makefile('rb')
            conn.sendall(self.greeting)
            self.talk(conn, f)
        self.finished()

    def talk(self, conn, f):
        raise NotImplementedError

    def finished(self):
        """The connection is over (not called when none came)."""

    def close(self):
        self.sock.close()


class RecordServer(OneShotServer):
    """An SMTP server with PIPELINING and STARTTLS that notes the plaintext of each TLS record it gets."""

    greeting = b'220 records.test ESMTP\r\n'

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.records = []
        super().__init__()

    def talk(self, conn, f):
        while True:
            line = f.readline().strip().upper()
            if line.startswith(b'EHLO'):
                conn.sendall(b'250-records.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n')
            elif line == b'STARTTLS':
                conn.sendall(b'220 go ahead\r\n')
                break
            else:
                return
        try:
            self.tls(conn)
        except (OSError, ssl.SSLError):
            pass

    def tls(self, conn):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)
        raw, text, handshaken, in_data = b'', b'', False, False

        def flush():
            data = out.read()
            if data:
                conn.sendall(data)

        def say(reply):
            tls.write(reply)
            flush()

        while True:
            while len(raw) < 5 or len(raw) < 5 + int.from_bytes(raw[3:5], 'big'):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                raw += chunk
            n = 5 + int.from_bytes(raw[3:5], 'big')
            inc.write(raw[:n])
            raw = raw[n:]
            if not handshaken:
                try:
                    tls.do_handshake()
                    handshaken = True
                except ssl.SSLWantReadError:
                    pass
                flush()
                continue
            try:
                plain = tls.read(65536)
            except ssl.SSLWantReadError:
                continue
            self.records.append(plain)
            text += plain
            while b'\r\n' in text:
                line, text = text.split(b'\r\n', 1)
                verb = line.upper()
                if in_data:
                    if line == b'.':
                        in_data = False
                        say(b'250 2.0.0 taken\r\n')
                elif verb.startswith(b'EHLO'):
                    say(b'250-records.test\r\n250 PIPELINING\r\n')
                elif verb.startswith((b'MAIL', b'RCPT', b'RSET')):
                    say(b'250 2.1.0 ok\r\n')
                elif verb == b'DATA':
                    in_data = True
                    say(b'354 go on\r\n')
                elif verb == b'QUIT':
                    say(b'221 2.0.0 bye\r\n')
                    return
                else:
                    say(b'500 5.5.1 what\r\n')


class InjectingServer(OneShotServer):
    """A raw-socket SMTP server that answers STARTTLS with a 220 and an injected 250 in one write."""

    greeting = b'220 hostile.test ESMTP\r\n'

    def __init__(self):
        self.after_starttls = None
        self.done = threading.Event()
        super().__init__()

    def talk(self, conn, f):
        while True:
            line = f.readline()
            if not line:
                break
            verb = line.strip().upper()
            if verb.startswith(b'EHLO'):
                conn.sendall(b'250-hostile.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n')
            elif verb == b'STARTTLS':
                conn.sendall(b'220 Ready to start TLS\r\n250 injected\r\n')
                rest = b''
                try:
                    while True:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        rest += chunk
                except OSError:
                    pass
                self.after_starttls = rest
                break
            else:
                conn.sendall(b'500 unexpected\r\n')

    def finished(self):
        self.done.set()


if __name__ == '__main__':
    harness.main()
