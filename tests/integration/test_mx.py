#!/usr/bin/python3
"""test_mx - the relay routes by MX, [routes] and named smarthosts (issue 6).

The gateway asks a real unbound (dns.py: the zone spoolgate.example, MX
targets on 127.0.0.2 ... 127.0.0.10) and delivers to aiosmtpd sinks that
listen on those loopback addresses, port 25 (the MX port; binding it needs
root, as the integration tests run; without root every MX route says
"mx:PORT" through a "*" route instead).  Messages come in over SMTP from
127.0.0.1 (a relay network), so no FUSE mount is needed.

Checked: the best-preference MX gets the message and the record names it;
a first MX that refuses connections, or greets with 421 or 554, is skipped for
the second; null MX fails at once with 556 5.1.10; NXDOMAIN fails with
550 5.1.2 and the DNS answer; SERVFAIL defers with 451 4.4.3, and so does
a lookup that gets no answer within dns_timeout (slow.ZONE); a [routes]
entry sends one domain to a fixed next hop while another goes by MX, and
recipients in two destinations make one transaction each, both arriving;
a smarthost "[name]:port" asks A only and "name:port" MX first.  SIGTERM
while a lookup is pending (slow.ZONE never answers) gives the claim back
unchanged; SIGTERM after one destination of two was delivered commits
what it did, so it is not sent again.
"""

import os
import re
import signal
import smtplib
import socket
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns
import harness
from harness import log, parse_record, wait_until

IS_ROOT = os.geteuid() == 0
MX_PORT = 25 if IS_ROOT else harness.free_port()
WAIT = 20		# seconds, an upper bound only


def token():
    return uuid.uuid4().hex[:12]


def dom(label):
    return '%s.%s' % (label, dns.ZONE)


class Sink:
    """An aiosmtpd server on (host, port) that keeps every transaction."""

    def __init__(self, host, port=MX_PORT, rcpt_reply=None):
        from aiosmtpd.controller import Controller
        self.host, self.port = host, port
        self.rcpt_reply = rcpt_reply	# a reply for every RCPT instead of 250
        self.lock = threading.Lock()
        self.received = []
        self.controller = Controller(self, hostname=host, port=port, server_hostname='sink.%s' % host)
        self.controller.start()

    def stop(self):
        self.controller.stop()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 ok'

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append({'rcpt': list(envelope.rcpt_tos), 'data': envelope.original_content})
        return '250 2.0.0 %s got it' % self.host

    def find(self, tok):
        with self.lock:
            return [m for m in self.received if tok.encode() in m['data']]


class Greeter421:
    """A raw server that greets with 421 (or another refusal) and hangs up:
    a host that will not talk now."""

    def __init__(self, host, port=MX_PORT, greeting=b'421 4.3.2 too busy, try another host\r\n'):
        self.greeting = greeting
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.greeted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.sendall(self.greeting)
                self.greeted += 1

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)	# wakes the accept() of the thread
        except OSError:
            pass
        self._thread.join(2)
        self.sock.close()


def mx_cfg(routes=None):
    """An empty smarthost: route by MX (port 25, or MX_PORT through "*" without root)."""
    routes = dict(routes or {})
    if not IS_ROOT:
        routes.setdefault('*', 'mx:%d' % MX_PORT)
    return {'smarthost': '', 'routes': routes}


def submit(gw, rcpts, tok):
    """Queues a message for rcpts through the gateway's SMTP listener; returns its id."""
    data = ('From: a@example.org\r\nTo: %s\r\nSubject: mx %s\r\n\r\nbody %s\r\n'
            % (', '.join(rcpts), tok, tok))
    with smtplib.SMTP(*gw.smtp_addr, timeout=10) as c:
        c.ehlo('client.example.org')
        code, text = c.mail('a@example.org')
        if code != 250:
            raise AssertionError('MAIL: %d %s' % (code, text))
        for r in rcpts:
            code, text = c.rcpt(r)
            if code != 250:
                raise AssertionError('RCPT %s: %d %s' % (r, code, text))
        code, text = c.data(data.encode())
        if code != 250:
            raise AssertionError('DATA: %d %s' % (code, text))
    return harness.queued_id(text)


def wait_record(gw, msgid, where, what, pred=lambda rec: True):
    def check():
        w, text = gw.find_record(msgid)
        if w == where and text is not None and pred(parse_record(text)):
            return parse_record(text), text
        return None
    try:
        return wait_until(check, WAIT, what)
    except AssertionError:
        w, text = gw.find_record(msgid)
        raise AssertionError('%s; the record is in %s:\n%s' % (what, w, text))


class ByMX(unittest.TestCase):
    """smarthost empty, resolver = the test unbound; one route to a fixed next hop."""

    @classmethod
    def setUpClass(cls):
        cls.dns = dns.TestDNS()
        cls.dns.start()
        cls.addClassCleanup(cls.dns.stop)
        cls.fixed = Sink('127.0.0.1', harness.free_port())
        cls.addClassCleanup(cls.fixed.stop)
        cfg = mx_cfg({'fixed.example': '[127.0.0.1]:%d' % cls.fixed.port})
        cls.gw = harness.Instance('mx', resolver=cls.dns.addr, dns_timeout=5, connect_timeout=5,
                                  hostname='gw.example', **cfg)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def sinks(self, *hosts):
        out = []
        for h in hosts:
            s = Sink(h)
            self.addCleanup(s.stop)
            out.append(s)
        return out

    def test_best_preference(self):
        """multi: MX 10 mx1, 20 mx2, 30 mx3: mx1 (127.0.0.2) gets it, the record names it"""
        s1, s2, s3 = self.sinks('127.0.0.2', '127.0.0.3', '127.0.0.4')
        tok = token()
        msgid = submit(self.gw, ['bob@' + dom('multi')], tok)
        rec, text = wait_record(self.gw, msgid, 'sent', 'the record of %s in sent/' % msgid)
        self.assertEqual(len(s1.find(tok)), 1)
        self.assertEqual(s2.find(tok) + s3.find(tok), [])
        self.assertEqual(rec['last-host'], 'mx1.%s[127.0.0.2]:%d' % (dns.ZONE, MX_PORT), text)
        self.assertEqual(rec['rcpt'][0][0], 'sent', text)

    def test_dead_first_mx(self):
        """deadmx: nothing listens on mx1 (127.0.0.2): mx2 (127.0.0.3) gets it"""
        s2, = self.sinks('127.0.0.3')
        tok = token()
        msgid = submit(self.gw, ['bob@' + dom('deadmx')], tok)
        rec, text = wait_record(self.gw, msgid, 'sent', 'the record of %s in sent/' % msgid)
        self.assertEqual(len(s2.find(tok)), 1)
        self.assertEqual(rec['last-host'], 'mx2.%s[127.0.0.3]:%d' % (dns.ZONE, MX_PORT), text)
        self.assertRegex(self.gw.read_log('smtpd'),
                         r'event=relay-next-host id=%s host=mx1\.%s\[127\.0\.0\.2\]' % (msgid, dns.ZONE))

    def refused_greeting_moves_on(self, greeting):
        """deadmx: mx1 greets with a refusal; mx2 gets the message in the same attempt."""
        g = Greeter421('127.0.0.2', greeting=greeting)
        self.addCleanup(g.stop)
        s2, = self.sinks('127.0.0.3')
        tok = token()
        msgid = submit(self.gw, ['bob@' + dom('deadmx')], tok)
        rec, text = wait_record(self.gw, msgid, 'sent', 'the record of %s in sent/' % msgid)
        self.assertEqual(len(s2.find(tok)), 1)
        self.assertGreaterEqual(g.greeted, 1)
        self.assertEqual(rec['attempts'], '1', text)
        self.assertEqual(rec['last-host'], 'mx2.%s[127.0.0.3]:%d' % (dns.ZONE, MX_PORT), text)
        return msgid

    def test_greeting_421_moves_on(self):
        """deadmx: mx1 greets with 421: mx2 gets it in the same attempt"""
        self.refused_greeting_moves_on(b'421 4.3.2 too busy, try another host\r\n')

    def test_greeting_554_moves_on(self):
        """deadmx: mx1 greets with 554: mx2 gets it in the same attempt (a 5xx greeting
        is no verdict on the recipients)"""
        msgid = self.refused_greeting_moves_on(b'554 5.7.1 this host does not talk to you\r\n')
        self.assertRegex(self.gw.read_log('smtpd'), r'event=relay-next-host id=%s host=mx1\.%s\[127\.0\.0\.2\]'
                         r'[^\n]*why="554 5\.7\.1 this host' % (msgid, dns.ZONE))

    def test_5xx_is_final(self):
        """deadmx: mx1 refuses the RCPT with 550: failed, mx2 is not asked"""
        s1 = Sink('127.0.0.2', rcpt_reply='550 5.1.1 no such user here')
        self.addCleanup(s1.stop)
        s2, = self.sinks('127.0.0.3')
        tok = token()
        msgid = submit(self.gw, ['bob@' + dom('deadmx')], tok)
        rec, text = wait_record(self.gw, msgid, 'failed', 'the record of %s in failed/' % msgid)
        self.assertEqual(rec['rcpt'][0][2], '550 5.1.1 no such user here', text)
        self.assertEqual(rec['last-host'], 'mx1.%s[127.0.0.2]:%d' % (dns.ZONE, MX_PORT), text)
        self.assertEqual(s2.find(tok), [])

    def test_ipv6_then_ipv4(self):
        """v6 (implicit MX): ::1 is tried first and refuses, 127.0.0.9 takes it in the same attempt"""
        s9, = self.sinks('127.0.0.9')
        tok = token()
        msgid = submit(self.gw, ['bob@' + dom('v6')], tok)
        rec, text = wait_record(self.gw, msgid, 'sent', 'the record of %s in sent/' % msgid)
        self.assertEqual(len(s9.find(tok)), 1)
        self.assertEqual(rec['last-host'], '%s[127.0.0.9]:%d' % (dom('v6'), MX_PORT), text)
        self.assertRegex(self.gw.read_log('smtpd'),
                         r'event=relay-next-host id=%s host=%s\[::1\]:%d ' % (msgid, re.escape(dom('v6')), MX_PORT))

    def test_null_mx(self):
        """nullmx: MX 0 . fails at once with 556 5.1.10, after one attempt"""
        msgid = submit(self.gw, ['bob@' + dom('nullmx')], token())
        rec, text = wait_record(self.gw, msgid, 'failed', 'the record of %s in failed/' % msgid)
        self.assertEqual(rec['rcpt'][0][0], 'failed', text)
        self.assertTrue(rec['rcpt'][0][2].startswith('556 5.1.10 '), text)
        self.assertEqual(rec['attempts'], '1', text)
        self.assertTrue(rec['last-reply'].startswith('556 5.1.10 '), text)

    def test_nxdomain(self):
        """nosuch: NXDOMAIN fails permanently with 550 5.1.2 and the DNS answer"""
        msgid = submit(self.gw, ['bob@' + dom('nosuch')], token())
        rec, text = wait_record(self.gw, msgid, 'failed', 'the record of %s in failed/' % msgid)
        self.assertEqual(rec['rcpt'][0][0], 'failed', text)
        self.assertTrue(rec['rcpt'][0][2].startswith('550 5.1.2 '), text)
        self.assertIn('MX lookup of %s: NXDOMAIN' % dom('nosuch'), rec['rcpt'][0][2], text)

    def test_servfail_defers(self):
        """servfail: deferred with 451 4.4.3 and the DNS answer, still in queue/"""
        msgid = submit(self.gw, ['bob@' + dom('servfail')], token())
        rec, text = wait_record(self.gw, msgid, 'queue', 'a deferred record of %s' % msgid,
                                lambda r: r.get('attempts') == '1')
        self.assertEqual(rec['rcpt'][0][0], 'pending', text)
        self.assertTrue(rec['rcpt'][0][2].startswith('451 4.4.3 '), text)
        self.assertIn('SERVFAIL', rec['rcpt'][0][2], text)

    def test_two_domains_two_transactions(self):
        """recipients at multi and nomx: one transaction each (127.0.0.2, 127.0.0.8), both sent"""
        s1, s8 = self.sinks('127.0.0.2', '127.0.0.8')
        tok = token()
        a, b = 'ann@' + dom('multi'), 'ben@' + dom('nomx')
        msgid = submit(self.gw, [a, b], tok)
        rec, text = wait_record(self.gw, msgid, 'sent', 'the record of %s in sent/' % msgid)
        self.assertEqual([m['rcpt'] for m in s1.find(tok)], [[a]])
        self.assertEqual([m['rcpt'] for m in s8.find(tok)], [[b]])
        self.assertEqual(sorted(r[0] for r in rec['rcpt']), ['sent', 'sent'], text)

    def test_route_and_mx(self):
        """[routes] fixed.example goes to its fixed next hop, multi by MX, in one message"""
        s1, = self.sinks('127.0.0.2')
        tok = token()
        a, b = 'ann@fixed.example', 'ben@' + dom('multi')
        msgid = submit(self.gw, [a, b], tok)
        rec, text = wait_record(self.gw, msgid, 'sent', 'the record of %s in sent/' % msgid)
        self.assertEqual([m['rcpt'] for m in self.fixed.find(tok)], [[a]])
        self.assertEqual([m['rcpt'] for m in s1.find(tok)], [[b]])

    def test_one_domain_fails_other_sent(self):
        """recipients at nullmx and multi: the first fails with 556, the second is sent"""
        s1, = self.sinks('127.0.0.2')
        tok = token()
        a, b = 'ann@' + dom('nullmx'), 'ben@' + dom('multi')
        msgid = submit(self.gw, [a, b], tok)
        rec, text = wait_record(self.gw, msgid, 'failed', 'the record of %s in failed/' % msgid)
        states = {addr: (state, reply) for state, addr, reply in rec['rcpt']}
        self.assertEqual(states[a][0], 'failed', text)
        self.assertTrue(states[a][1].startswith('556 5.1.10 '), text)
        self.assertEqual(states[b][0], 'sent', text)
        self.assertEqual([m['rcpt'] for m in s1.find(tok)], [[b]])


class NamedSmarthost(unittest.TestCase):
    """amx has A 127.0.0.10 and MX 10 mx1 (127.0.0.2): "[amx]:port" asks A
    only and goes to 127.0.0.10; "amx:port" asks MX first and goes to mx1."""

    @classmethod
    def setUpClass(cls):
        cls.dns = dns.TestDNS()
        cls.dns.start()
        cls.addClassCleanup(cls.dns.stop)
        cls.port = harness.free_port()
        cls.s2 = Sink('127.0.0.2', cls.port)
        cls.addClassCleanup(cls.s2.stop)
        cls.s10 = Sink('127.0.0.10', cls.port)
        cls.addClassCleanup(cls.s10.stop)

    def via(self, smarthost):
        gw = harness.Instance('mx-smarthost', smarthost=smarthost, resolver=self.dns.addr,
                              dns_timeout=5, hostname='gw.example')
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        tok = token()
        msgid = submit(gw, ['bob@example.net'], tok)
        rec, text = wait_record(gw, msgid, 'sent', 'the record of %s in sent/' % msgid)
        return tok, rec, text

    def test_bracketed_name_a_only(self):
        """smarthost [amx.ZONE]:port: A only, 127.0.0.10, not the MX"""
        tok, rec, text = self.via('[%s]:%d' % (dom('amx'), self.port))
        self.assertEqual(len(self.s10.find(tok)), 1)
        self.assertEqual(self.s2.find(tok), [])
        self.assertEqual(rec['last-host'], '%s[127.0.0.10]:%d' % (dom('amx'), self.port), text)

    def test_name_mx_first(self):
        """smarthost amx.ZONE:port: its MX mx1 (127.0.0.2), not its A record"""
        tok, rec, text = self.via('%s:%d' % (dom('amx'), self.port))
        self.assertEqual(len(self.s2.find(tok)), 1)
        self.assertEqual(self.s10.find(tok), [])
        self.assertEqual(rec['last-host'], 'mx1.%s[127.0.0.2]:%d' % (dns.ZONE, self.port), text)


class DNSTimeout(unittest.TestCase):
    """slow.ZONE never answers: with a resolver of its own (nothing cached
    from other lookups) the lookup runs into dns_timeout = 3."""

    def setUp(self):
        self.dns = dns.TestDNS()
        self.dns.start()
        self.addCleanup(self.dns.stop)
        self.gw = harness.Instance('mx-timeout', resolver=self.dns.addr, dns_timeout=3,
                                   hostname='gw.example', **mx_cfg())
        self.addCleanup(self.gw.cleanup)
        self.gw.start_smtpd()

    def test_dns_timeout_defers(self):
        """slow: no DNS answer within dns_timeout: deferred with 451 4.4.3, still in queue/"""
        t0 = time.monotonic()
        msgid = submit(self.gw, ['bob@' + dom('slow')], token())
        rec, text = wait_record(self.gw, msgid, 'queue', 'a deferred record of %s' % msgid,
                                lambda r: r.get('attempts') == '1')
        self.assertEqual(rec['rcpt'][0][0], 'pending', text)
        self.assertRegex(rec['rcpt'][0][2], r'^451 4\.4\.3 .*MX lookup of %s: no answer in time'
                         % re.escape(dom('slow')), text)
        self.assertGreaterEqual(time.monotonic() - t0, 2.5, 'deferred before dns_timeout (3 s) ran out')
        self.assertEqual(len(rec['attempt']), 1, text)
        self.assertRegex(rec['attempt'][0], r'^\d+ host=mx:%s tls=no cipher=- verified=no reply=451 4\.4\.3 '
                         % re.escape(dom('slow')))
        self.assertNotIn(msgid, self.gw.listdir('failed'))


class ShutdownWhileResolving(unittest.TestCase):
    """slow.ZONE is delegated to a server that never answers: its lookup
    pends (dns_timeout = 120) while smtpd gets SIGTERM."""

    def setUp(self):
        self.dns = dns.TestDNS()
        self.dns.start()
        self.addCleanup(self.dns.stop)
        self.gw = harness.Instance('mx-term', resolver=self.dns.addr, dns_timeout=120,
                                   hostname='gw.example', **mx_cfg())
        self.addCleanup(self.gw.cleanup)
        self.gw.start_smtpd()

    def test_claim_given_back(self):
        """SIGTERM with the only lookup pending: exit 0, the record back in queue/ unchanged"""
        msgid = submit(self.gw, ['bob@' + dom('slow')], token())
        wait_until(lambda: self.gw.find_record(msgid)[0] == 'active', WAIT, 'the claim of %s' % msgid)
        self.assertEqual(self.gw.kill('smtpd', signal.SIGTERM), 0, 'smtpd exit status on SIGTERM')
        where, text = self.gw.find_record(msgid)
        self.assertEqual(where, 'queue', text)
        rec = parse_record(text)
        self.assertEqual(rec.get('attempts', '0'), '0', text)
        self.assertEqual(rec['rcpt'][0][0], 'pending', text)
        self.assertRegex(self.gw.read_log('smtpd'), r'event=relay-abandoned id=%s ' % re.escape(msgid))

    def test_delivered_destination_kept(self):
        """SIGTERM after multi was delivered, slow pending: ann recorded sent, not sent again"""
        s1 = Sink('127.0.0.2')
        self.addCleanup(s1.stop)
        tok = token()
        a, b = 'ann@' + dom('multi'), 'ben@' + dom('slow')
        msgid = submit(self.gw, [a, b], tok)
        wait_until(lambda: re.search(r'event=relay-rcpt id=%s rcpt=%s status=sent'
                                     % (re.escape(msgid), re.escape(a)), self.gw.read_log('smtpd')),
                   WAIT, 'the delivery to %s' % a)
        self.assertEqual(self.gw.kill('smtpd', signal.SIGTERM), 0, 'smtpd exit status on SIGTERM')
        where, text = self.gw.find_record(msgid)
        self.assertEqual(where, 'queue', text)
        states = {addr: state for state, addr, reply in parse_record(text)['rcpt']}
        self.assertEqual(states, {a: 'sent', b: 'pending'}, text)
        self.assertEqual(parse_record(text).get('attempts'), '1', text)
        self.assertEqual(len(s1.find(tok)), 1)


if __name__ == '__main__':
    unittest.main(verbosity=2)
