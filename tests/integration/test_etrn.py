#!/usr/bin/python3
"""test_etrn - held domains and ETRN (RFC 1985), every reply code.

[routes] hold keeps a domain's mail queued (no attempt, no backoff) until
its node asks: ETRN over SMTP (raw sockets for every code, fetchmail's
ETRN mode as a real client) or spoolgate-mailq --flush=NODE from the
shell.  The held mail then goes to the hold's target, an aiosmtpd sink
in this process.  Each row asserts the code and the enhanced code:
250 2.0.0 (#deferred), 251 2.0.0, 252 2.0.0, 253 2.0.0, 458 4.3.0,
459 4.7.1, 501 5.5.4, 502 5.5.1, 503 5.5.1.
Needs no FUSE: messages come in over SMTP.
"""

import os
import re
import shutil
import smtplib
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import assert_reply, log, wait_until
from test_relay import start_sink_for


def send(gw, rcpts, tok):
    with smtplib.SMTP(*gw.smtp_addr, timeout=10) as c:
        c.sendmail('alice@localhost', rcpts, 'Subject: etrn %s\r\n\r\nbody token-%s\r\n' % (tok, tok))


def queued_records(gw):
    """{record name: parsed record} of queue/ and active/."""
    out = {}
    for d in ('queue', 'active'):
        for name in gw.listdir(d):
            if name.startswith('.'):
                continue
            try:
                with open(gw.path(d, name)) as f:
                    out[name] = harness.parse_record(f.read())
            except FileNotFoundError:
                pass
    return out


class Etrn(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        start_sink_for(cls)
        hop = '127.0.0.1:%d' % cls.sink.port
        sock, port = harness.refusing_port()
        cls.addClassCleanup(sock.close)
        cls.dead = '127.0.0.1:%d' % port
        cls.gw = harness.Instance(
            'etrn', smarthost=hop, scan_interval=1, retry_min=3600, retry_max=3600,
            routes={'held.test': 'hold ' + hop, '.held.test': 'hold ' + hop,
                    'nohop.test': 'hold', 'dead.test': cls.dead},
            listeners={'main': {'listen': '127.0.0.1:%d' % harness.free_port()},
                       'strict': {'listen': '127.0.0.1:%d' % harness.free_port(),
                                  'etrn': 'relay', 'relay_networks': ''},
                       'noetrn': {'listen': '127.0.0.1:%d' % harness.free_port(), 'etrn': 'no'}},
            listen=None, relay_networks='127.0.0.0/8')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.port = cls.gw.listener_addr('main')[1]

    def setUp(self):
        with self.sink.lock:
            self.sink.data_delay = None

    def raw(self, listener='main', ehlo=True):
        c = harness.RawSMTP(self.gw.listener_addr(listener))
        self.addCleanup(c.close)
        if ehlo:
            assert_reply(self, c.ehlo(), 250, what='EHLO')
        return c

    def held_for(self, domain):
        """Ids of queue/ records with a pending recipient at domain."""
        return [n for n, r in queued_records(self.gw).items()
                if any(st == 'pending' and a.endswith('@' + domain) for st, a, _ in r['rcpt'])]

    def test_held_until_etrn_253_then_251(self):
        """held mail waits (no attempt) while other mail goes; ETRN: 253 with the count, then 251"""
        toks = [uuid.uuid4().hex[:12] for _ in range(3)]
        send(self.gw, ['a@held.test'], toks[0])
        send(self.gw, ['b@held.test', 'x@other.test'], toks[1])
        send(self.gw, ['c@sub.held.test'], toks[2])
        wait_until(lambda: self.sink.find(toks[1]), 10, 'x@other.test delivered')
        time.sleep(2.5)			# two scans (scan_interval = 1): nothing held may go
        got = self.sink.find(toks[1])
        self.assertEqual([m['rcpt'] for m in got], [['x@other.test']], 'only the unheld recipient went')
        self.assertFalse(self.sink.find(toks[0]) or self.sink.find(toks[2]), 'held mail was delivered')
        recs = queued_records(self.gw)
        attempts = {n: r['attempts'] for n, r in recs.items()}
        self.assertEqual(len(self.held_for('held.test')), 2, recs)
        # the record with only held recipients was never attempted
        only_held = [n for n, r in recs.items() if [a for _, a, _ in r['rcpt']] == ['a@held.test']]
        self.assertEqual(len(only_held), 1)
        self.assertEqual(attempts[only_held[0]], '0', recs[only_held[0]])
        # mailq shows it held
        mq = subprocess.run([harness.MAILQ, '-v', '-c', self.gw.conf], capture_output=True, text=True,
                            timeout=30)
        self.assertEqual(mq.returncode, 0, mq.stderr)
        self.assertRegex(mq.stdout, r'held\s+<a@held\.test>')
        self.assertRegex(mq.stdout, r'%s\s+\d+\s+\S+ \S+\s+held\s' % re.escape(only_held[0]))

        c = self.raw()
        r = c.cmd('ETRN held.test')
        assert_reply(self, r, 253, '2.0.0', 'ETRN held.test')
        self.assertIn('OK, 2 pending messages for node held.test started', r.text)
        wait_until(lambda: self.sink.find(toks[0]) and len(self.sink.find(toks[1])) == 2, 10,
                   'the held mail of held.test delivered')
        self.assertEqual(self.sink.find(toks[0])[0]['rcpt'], ['a@held.test'])
        self.assertFalse(self.sink.find(toks[2]), 'sub.held.test went with ETRN held.test')
        wait_until(lambda: not self.held_for('held.test'), 10, 'held.test records out of queue/')
        r = c.cmd('ETRN held.test')
        assert_reply(self, r, 251, '2.0.0', 'ETRN held.test again')
        self.assertIn('OK, no messages waiting for node held.test', r.text)
        # "@held.test" takes the names below it
        r = c.cmd('ETRN @held.test')
        assert_reply(self, r, 253, '2.0.0', 'ETRN @held.test')
        self.assertIn('OK, 1 pending messages for node @held.test started', r.text)
        wait_until(lambda: self.sink.find(toks[2]), 10, 'c@sub.held.test delivered')
        wait_until(lambda: not self.held_for('sub.held.test'), 10, 'record out of queue/')
        self.assertGreaterEqual(len(self.gw.listdir('sent')), 3)

    def test_252_while_a_run_is_under_way(self):
        """ETRN while the node's message is being delivered: 252 (pending messages started)"""
        tok = uuid.uuid4().hex[:12]
        with self.sink.lock:
            self.sink.data_delay = lambda m: 4 if tok.encode() in m['data'] else 0
        send(self.gw, ['slow@run.held.test'], tok)
        wait_until(lambda: self.held_for('run.held.test'), 5, 'queued')
        c = self.raw()
        assert_reply(self, c.cmd('ETRN run.held.test'), 253, '2.0.0', 'first ETRN')
        wait_until(lambda: self.sink.find(tok, attempts=True), 10, 'the sink has the DATA')
        r = c.cmd('ETRN run.held.test')
        assert_reply(self, r, 252, '2.0.0', 'ETRN during the delivery')
        self.assertIn('OK, pending messages for node run.held.test started', r.text)
        wait_until(lambda: self.sink.find(tok), 10, 'delivered')

    def test_458_no_next_hop(self):
        """a hold without a target: 458 4.3.0, the mail stays"""
        tok = uuid.uuid4().hex[:12]
        send(self.gw, ['n@nohop.test'], tok)
        wait_until(lambda: self.held_for('nohop.test'), 5, 'queued')
        r = self.raw().cmd('ETRN nohop.test')
        assert_reply(self, r, 458, '4.3.0', 'ETRN nohop.test')
        self.assertIn('Unable to queue messages for node nohop.test', r.text)
        self.assertTrue(self.held_for('nohop.test'))

    def test_459_not_held_and_not_allowed(self):
        """459 4.7.1: a domain not held, a client the listener does not let ask, an unknown #queue"""
        c = self.raw()
        r = c.cmd('ETRN other.test')
        assert_reply(self, r, 459, '4.7.1', 'ETRN other.test (not held)')
        self.assertIn('Node other.test not allowed:', r.text)
        r = c.cmd('ETRN #nosuch')
        assert_reply(self, r, 459, '4.7.1', 'ETRN #nosuch')
        r = self.raw('strict').cmd('ETRN held.test')
        assert_reply(self, r, 459, '4.7.1', 'etrn = relay, client may not relay')
        self.assertIn('Node held.test not allowed: this client may not ask', r.text)
        r = self.raw('strict').cmd('ETRN #deferred')
        assert_reply(self, r, 459, '4.7.1', '#deferred from a client that may not relay')

    def test_250_deferred_queue_run(self):
        """ETRN #deferred: 250 2.0.0 and a deferred message is tried again at once"""
        tok = uuid.uuid4().hex[:12]
        send(self.gw, ['d@dead.test'], tok)
        wait_until(lambda: [r for r in queued_records(self.gw).values()
                            if r['attempts'] == '1' and any('d@dead.test' == a for _, a, _ in r['rcpt'])],
                   15, 'first attempt deferred')
        r = self.raw().cmd('ETRN #deferred')
        assert_reply(self, r, 250, '2.0.0', 'ETRN #deferred')
        self.assertIn('OK, queuing for node #deferred started', r.text)
        wait_until(lambda: [r for r in queued_records(self.gw).values()
                            if r['attempts'] == '2' and any('d@dead.test' == a for _, a, _ in r['rcpt'])],
                   15, 'second attempt at once (retry_min is an hour)')

    def test_501_503_502_and_ehlo(self):
        """501 5.5.4 bad arguments; 503 5.5.1 before EHLO and in a transaction; 502 5.5.1 with etrn = no"""
        c = self.raw()
        ehlo = c.ehlo()
        self.assertIn('ETRN', [l.split()[0] for l in ehlo.lines[1:]])
        for arg in ('', 'bad..domain', '@', '#', '[127.0.0.1]', 'a b', '#que/ue', 'x' * 300 + '.test'):
            assert_reply(self, c.cmd(('ETRN ' + arg).rstrip()), 501, '5.5.4', 'ETRN %r' % arg[:20])
        assert_reply(self, c.cmd('MAIL FROM:<alice@localhost>'), 250)
        assert_reply(self, c.cmd('ETRN held.test'), 503, '5.5.1', 'ETRN in a transaction')
        assert_reply(self, c.cmd('RSET'), 250)
        assert_reply(self, self.raw(ehlo=False).cmd('ETRN held.test'), 503, '5.5.1', 'ETRN before EHLO')
        n = self.raw('noetrn')
        self.assertNotIn('ETRN', [l.split()[0] for l in n.ehlo().lines[1:]])
        assert_reply(self, n.cmd('ETRN held.test'), 502, '5.5.1', 'etrn = no')

    def test_mailq_flush_node(self):
        """spoolgate-mailq --flush=NODE: the held mail of that node goes, the others stay"""
        toks = [uuid.uuid4().hex[:12] for _ in range(2)]
        send(self.gw, ['m@mq.held.test'], toks[0])
        send(self.gw, ['o@other.held.test'], toks[1])
        wait_until(lambda: self.held_for('mq.held.test') and self.held_for('other.held.test'), 5, 'queued')
        bad = subprocess.run([harness.MAILQ, '--flush=bad..name', '-c', self.gw.conf], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(bad.returncode, 64, bad.stderr)	# EX_USAGE
        mq = subprocess.run([harness.MAILQ, '--flush=mq.held.test', '-c', self.gw.conf], capture_output=True,
                            text=True, timeout=30)
        self.assertEqual(mq.returncode, 0, mq.stderr)
        wait_until(lambda: self.sink.find(toks[0]), 10, 'm@mq.held.test delivered')
        self.assertRegex(self.gw.read_log('smtpd'), r'event=relay-etrn node=mq\.held\.test released=1 ')
        time.sleep(1.5)
        self.assertFalse(self.sink.find(toks[1]), 'other.held.test went too')
        self.assertTrue(self.held_for('other.held.test'))
        # the same by hand: a file in the spool, as a script would write it
        path = self.gw.path('flush.@other.held.test')
        with open(path, 'w') as f:
            f.write('asked by a script\n')
        wait_until(lambda: self.sink.find(toks[1]), 10, 'o@other.held.test delivered')
        self.assertFalse(os.path.exists(path), 'the request file was not removed')

    def test_fetchmail_etrn(self):
        """fetchmail --protocol ETRN as the client: the held mail goes, and fetchmail says so"""
        fm = shutil.which('fetchmail')
        if fm is None:
            self.skipTest('fetchmail is not installed (scripts/deps.sh)')
        toks = [uuid.uuid4().hex[:12] for _ in range(2)]
        send(self.gw, ['f1@fm.held.test'], toks[0])
        send(self.gw, ['f2@fm.held.test'], toks[1])
        wait_until(lambda: len(self.held_for('fm.held.test')) == 2, 5, 'queued')
        home = os.path.join(self.gw.dir, 'fetchmail')
        os.makedirs(home, exist_ok=True)
        rc = os.path.join(home, 'fetchmailrc')
        with open(rc, 'w') as f:
            f.write('')
        os.chmod(rc, 0o600)
        env = dict(os.environ, FETCHMAILHOME=home, HOME=home)
        p = subprocess.run([fm, '-f', rc, '--nodetach', '--verbose', '--protocol', 'ETRN',
                            '--port', str(self.gw.port), '--fetchdomains', 'fm.held.test', '127.0.0.1'],
                           capture_output=True, text=True, timeout=60, env=env)
        out = p.stdout + p.stderr
        log('  fetchmail exit %d:\n%s' % (p.returncode, '\n'.join('    ' + l for l in out.splitlines())))
        self.assertIn('ETRN fm.held.test', out)
        self.assertIn('253 2.0.0 OK, 2 pending messages for node fm.held.test started', out)
        self.assertIn('Pending messages for fm.held.test started', out)
        self.assertEqual(p.returncode, 0, out)
        wait_until(lambda: self.sink.find(toks[0]) and self.sink.find(toks[1]), 10, 'both delivered')
        # and once more: nothing is waiting, which fetchmail reports in its own words
        p = subprocess.run([fm, '-f', rc, '--nodetach', '--verbose', '--protocol', 'ETRN',
                            '--port', str(self.gw.port), '--fetchdomains', 'fm.held.test', '127.0.0.1'],
                           capture_output=True, text=True, timeout=60, env=env)
        out = p.stdout + p.stderr
        self.assertIn('251 2.0.0 OK, no messages waiting for node fm.held.test', out)
        self.assertIn('No messages waiting for fm.held.test', out)
        self.assertEqual(p.returncode, 0, out)


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.MAILQ))
