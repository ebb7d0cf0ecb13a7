#!/usr/bin/python3
"""test_dns - routing lookups through smtpd/dns.c against a real DNS server.

A private unbound (dns.py) serves the test zone on a loopback port; the
program build/tests/dns_probe resolves next hops through smtpd/dns.c
(libunbound on a libevent loop) and prints each answer.  The checks:

* MX order: hosts sorted by preference whatever order the answer has
  (libunbound rotates it), each with its address and the port of the route.
  The server compresses the MX names on the wire; the rdata parser refuses
  compression pointers, so these answers show that libunbound's rdata is
  uncompressed.
* Equal preferences are shuffled: permutations that no rotation of the
  answer gives appear; the higher preference stays last.
* An MX list that names this host is cut there (RFC 5321 5.1); when this
  host is the best MX: 554 5.4.6.
* No MX: the domain itself (implicit MX), IPv6 before IPv4.
* Null MX: 556 5.1.10.  NXDOMAIN of the recipient's domain: 550 5.1.2 with
  the DNS answer.  MX hosts without addresses: 550 5.4.4.
* SERVFAIL and names outside the zone (REFUSED by the server): 451 4.4.3.
* Configured next hops: [host]:port looks up no MX; host:port does;
  a configured host that does not exist defers (451), it never bounces.
* A lookup that gets no answer ends at the deadline with 451 4.4.3, and
  meanwhile the loop runs: a timer keeps firing and other lookups started
  after it finish before it.
* At the deadline, the addresses that did arrive are used (an MX host
  whose lookup never ends does not hide the one that answered).
* The system resolver (/etc/resolv.conf) can be set up.
* A cancelled lookup never calls back; freeing the resolver with lookups
  pending ends at once.
"""

import os
import re
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns
import harness
from harness import log

PROBE = os.path.join(harness.BUILD, 'tests', 'dns_probe')
Z = dns.ZONE
LINE = re.compile(r'^done i=(\d+) order=(\d+) ticks=(\d+) status=(-?\d+)(?: targets=(\S*))?'
                  r'(?: code=(\d+) esc=(\S+) text=(.*))?$')


class Answer:
    def __init__(self, m):
        self.i, self.order, self.ticks, self.status = (int(m.group(k)) for k in (1, 2, 3, 4))
        self.targets = [tuple(t.split('/')) for t in m.group(5).split(',')] if m.group(5) else []
        self.code = int(m.group(6)) if m.group(6) else None
        self.esc = m.group(7)
        self.text = m.group(8)

    @property
    def hosts(self):
        return [t[0] for t in self.targets]

    def __repr__(self):
        return 'Answer(i=%d status=%d targets=%s code=%s %s %s)' % (
            self.i, self.status, self.targets, self.code, self.esc, self.text)


def probe(server, specs, timeout_s=5, options=(), wall=60):
    """Runs dns_probe; returns ({index: Answer}, end line)."""
    argv = [PROBE, '-t', str(timeout_s)] + list(options) + [server.addr] + list(specs)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=wall)
    if p.returncode != 0:
        raise AssertionError('dns_probe exited %d: %s %s' % (p.returncode, p.stdout, p.stderr))
    answers, end = {}, None
    for line in p.stdout.splitlines():
        if line.startswith('error'):
            raise AssertionError('dns_probe: ' + line)
        if line.startswith('end '):
            end = line
            continue
        m = LINE.match(line)
        if m is None:
            continue
        a = Answer(m)
        if a.i in answers:
            raise AssertionError('lookup %d answered twice: %s' % (a.i, p.stdout))
        answers[a.i] = a
    if end is None:
        raise AssertionError('dns_probe did not finish: %s %s' % (p.stdout, p.stderr))
    return answers, end


def mx(name, port=None):
    return 'mx=%s.%s%s' % (name, Z, ':%d' % port if port else '')


class DNSRouting(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = dns.TestDNS()
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        log('unbound on %s' % cls.server.addr)

    def one(self, spec, **kw):
        answers, _ = probe(self.server, [spec], **kw)
        self.assertIn(0, answers)
        return answers[0]

    def assert_fails(self, a, status, code, esc, text):
        self.assertEqual(a.status, status, a)
        self.assertEqual((a.code, a.esc), (code, esc), a)
        self.assertIn(text, a.text, a)

    def test_mx_sorted_by_preference(self):
        answers, _ = probe(self.server, [mx('multi')] * 12)
        want = [('mx1.' + Z, '127.0.0.2', '25'), ('mx2.' + Z, '127.0.0.3', '25'),
                ('mx3.' + Z, '127.0.0.4', '25')]
        self.assertEqual(len(answers), 12)
        for a in answers.values():
            self.assertEqual(a.status, 0, a)
            self.assertEqual(a.targets, want, a)
        log('12 lookups of multi: always mx1, mx2, mx3')

    def test_server_compresses_mx_names(self):
        """The MX test above reads libunbound's rdata with a parser that refuses
        compression pointers; it passes only because libunbound hands rdata
        uncompressed.  Check that the wire answer it came from is compressed."""
        data = dns.query(self.server.port, 'multi.' + Z, 15, raw=True)
        self.assertIsNotNone(data)
        ancount = struct.unpack('>H', data[6:8])[0]
        pos = 12 + len('multi.' + Z) + 2 + 4		# header, question name, type and class
        compressed = 0
        for _ in range(ancount):
            while data[pos] != 0 and data[pos] & 0xc0 != 0xc0:	# the owner name
                pos += data[pos] + 1
            pos += 2 if data[pos] & 0xc0 == 0xc0 else 1
            rtype, _, _, rdlen = struct.unpack('>HHIH', data[pos:pos + 10])
            pos += 10
            rdata = data[pos:pos + rdlen]
            pos += rdlen
            if rtype == 15 and rdata[-2] & 0xc0 == 0xc0:
                compressed += 1
        self.assertEqual(compressed, 3, data)

    def test_route_port_is_used(self):
        a = self.one(mx('multi', 2526))
        self.assertEqual([t[2] for t in a.targets], ['2526'] * 3, a)

    def test_equal_preferences_shuffled(self):
        answers, _ = probe(self.server, [mx('equal')] * 40)
        orders = set()
        for a in answers.values():
            self.assertEqual(a.status, 0, a)
            self.assertEqual(sorted(a.hosts[:3]), ['eq1.' + Z, 'eq2.' + Z, 'eq3.' + Z], a)
            self.assertEqual(a.hosts[3], 'mx3.' + Z, a)
            orders.add(tuple(h.split('.')[0] for h in a.hosts[:3]))
        # Rotations of the answer give only the cyclic orders; the shuffle gives the others too.
        cyclic = {('eq1', 'eq2', 'eq3'), ('eq2', 'eq3', 'eq1'), ('eq3', 'eq1', 'eq2')}
        log('orders of the equal preferences in 40 lookups: %s' % sorted(orders))
        self.assertTrue(orders - cyclic, 'only rotations of the answer: %s' % orders)

    def test_mx_list_naming_this_host_is_cut(self):
        a = self.one(mx('multi'), options=['-s', 'MX2.' + Z])
        self.assertEqual(a.hosts, ['mx1.' + Z], a)
        a = self.one(mx('multi'), options=['-s', 'mx1.' + Z])
        self.assert_fails(a, -1, 554, '5.4.6', 'loops back to myself')

    def test_implicit_mx(self):
        a = self.one(mx('nomx'))
        self.assertEqual(a.targets, [('nomx.' + Z, '127.0.0.8', '25')], a)

    def test_implicit_mx_ipv6_first(self):
        a = self.one(mx('v6'))
        self.assertEqual(a.targets, [('v6.' + Z, '::1', '25'), ('v6.' + Z, '127.0.0.9', '25')], a)

    def test_null_mx(self):
        self.assert_fails(self.one(mx('nullmx')), -1, 556, '5.1.10', 'null MX')

    def test_nxdomain(self):
        self.assert_fails(self.one(mx('nosuch')), -1, 550, '5.1.2', 'MX lookup of nosuch.%s: NXDOMAIN' % Z)

    def test_mx_hosts_without_address(self):
        a = self.one(mx('noaddr'))
        self.assert_fails(a, -1, 550, '5.4.4', 'ghost.%s: NXDOMAIN' % Z)

    def test_servfail_defers(self):
        a = self.one(mx('servfail'))
        self.assert_fails(a, -11, 451, '4.4.3', 'MX lookup of servfail.%s: SERVFAIL' % Z)
        self.assertGreater(self.server.refuser.queries, 0)

    def test_outside_the_zone_defers(self):
        self.assert_fails(self.one('mx=elsewhere.org'), -11, 451, '4.4.3', 'elsewhere.org')

    def test_bracketed_host_skips_mx(self):
        # multi has MX records but no address of its own.
        a = self.one('[multi.%s]:25' % Z)
        self.assert_fails(a, -11, 451, '4.4.3', 'no address for the mail hosts of multi.%s' % Z)
        a = self.one('[mx2.%s]:2525' % Z)
        self.assertEqual(a.targets, [('mx2.' + Z, '127.0.0.3', '2525')], a)

    def test_host_port_looks_up_mx(self):
        a = self.one('multi.%s:2525' % Z)
        self.assertEqual(a.hosts, ['mx1.' + Z, 'mx2.' + Z, 'mx3.' + Z], a)

    def test_configured_host_that_does_not_exist_defers(self):
        self.assert_fails(self.one('nosuch.%s:25' % Z), -11, 451, '4.4.3', 'NXDOMAIN')
        self.assert_fails(self.one('[nosuch.%s]:25' % Z), -11, 451, '4.4.3', 'NXDOMAIN')

    def test_literals_need_no_dns(self):
        answers, _ = probe(self.server, ['127.0.0.3:2525', '[::1]:26', '[127.0.0.4]:27'])
        self.assertEqual(answers[0].targets, [('127.0.0.3', '127.0.0.3', '2525')])
        self.assertEqual(answers[1].targets, [('::1', '::1', '26')])
        self.assertEqual(answers[2].targets, [('127.0.0.4', '127.0.0.4', '27')])

    def test_slow_lookup_blocks_nothing(self):
        before = self.server.blackhole.queries
        answers, end = probe(self.server, [mx('slow'), mx('multi'), mx('nomx'), '[mx3.%s]:25' % Z],
                             timeout_s=2)
        slow = answers[0]
        self.assert_fails(slow, -11, 451, '4.4.3', 'MX lookup of slow.%s: no answer in time' % Z)
        for i in (1, 2, 3):
            self.assertEqual(answers[i].status, 0, answers[i])
            self.assertLess(answers[i].order, slow.order, answers)
        self.assertEqual(slow.order, 3)
        # The loop's 20 ms timer kept firing while the slow lookup was pending.
        self.assertGreaterEqual(slow.ticks, 10, slow)
        self.assertGreater(self.server.blackhole.queries, before, 'the slow server was never asked')
        self.assertIn('pending=0', end)
        log('slow lookup: %s; %d timer ticks meanwhile' % (slow.text, slow.ticks))

    def test_deadline_keeps_the_addresses_that_came(self):
        a = self.one(mx('partial'), timeout_s=1)
        self.assertEqual(a.status, 0, a)
        self.assertEqual(a.targets, [('mx1.' + Z, '127.0.0.2', '25')], a)

    def test_system_resolver(self):
        """resolver = "" reads /etc/resolv.conf; an address literal needs no DNS at all."""
        p = subprocess.run([PROBE, 'system', '127.0.0.1:2525'], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('targets=127.0.0.1/127.0.0.1/2525', p.stdout)

    def test_cancel_never_calls_back(self):
        answers, end = probe(self.server, [mx('slow'), mx('multi')], timeout_s=30, options=['-c', '0'], wall=20)
        self.assertNotIn(0, answers)
        self.assertEqual(answers[1].status, 0)
        self.assertIn('pending=0', end)

    def test_free_with_pending_lookups(self):
        answers, end = probe(self.server, [mx('slow'), mx('multi')], timeout_s=30, options=['-x', '1'], wall=20)
        self.assertEqual(list(answers), [1])
        self.assertIn('pending=1', end)


if __name__ == '__main__':
    harness.main(binaries=(PROBE,))
