#!/usr/bin/python3
"""test_reuse - the relay reuses a finished connection for the next message.

A raw-socket sink counts connections and records, per connection, the
transactions it carried.  20 messages to one destination arrive in at most
max_per_destination connections, each message exactly once, and the idle
connections say QUIT when smtpd stops; connection_idle_timeout = 0 gives
one connection per message, and an idle connection says QUIT after
connection_idle_timeout; connection_reuse_count_limit caps the
transactions of one connection; a sink that answers RSET with 421, one
that refuses RSET with 550 and then takes the MAIL, RCPT and DATA
pipelined after it, or one that closes the connection after each message,
makes the gateway reconnect without losing, duplicating or deferring
anything.  Whether a connection
may carry another route's mail (TLS policy, credentials) is the unit test
of nexthop_can_share() (tests/unit/test_nexthop.c).
Needs no FUSE: messages come in over SMTP.
"""

import os
import re
import smtplib
import socketserver
import sys
import threading
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, wait_until

N = 20


class CountingSink:
    """A small SMTP server that numbers its connections.  mode: 'normal';
    'rset421' answers RSET with 421 and closes; 'rset550' refuses RSET
    with 550 and goes on reading (what a pipelined MAIL, RCPT and DATA
    after it ask for is done: a message ended by the connection's close
    is dropped); 'close' closes the connection after each message's 250."""

    def __init__(self, mode='normal'):
        self.mode = mode
        self.lock = threading.Lock()
        self.conns = []		# per connection: {'tx': [tokens], 'quit': bool, 'rset': n}
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    self.converse()
                except (BrokenPipeError, ConnectionResetError):
                    pass		# the gateway dropped the connection (rset550)

            def converse(self):
                conn = {'tx': [], 'quit': False, 'rset': 0}
                with sink.lock:
                    sink.conns.append(conn)
                self.wfile.write(b'220 counting.test ESMTP\r\n')
                while True:
                    line = self.rfile.readline(4096)
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb == b'EHLO':
                        self.wfile.write(b'250-counting.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n')
                    elif verb == b'RSET':
                        with sink.lock:
                            conn['rset'] += 1
                        if sink.mode == 'rset421':
                            self.wfile.write(b'421 4.3.2 counting.test closing\r\n')
                            return
                        if sink.mode == 'rset550':
                            self.wfile.write(b'550 5.5.1 counting.test will not reset\r\n')
                            continue
                        self.wfile.write(b'250 2.0.0 ok\r\n')
                    elif verb == b'DATA':
                        self.wfile.write(b'354 go ahead\r\n')
                        lines = []
                        while True:
                            dl = self.rfile.readline(1 << 20)
                            if not dl:
                                return		# no end of data: nothing delivered
                            if dl == b'.\r\n':
                                break
                            lines.append(dl)
                        toks = re.findall(rb'token-([0-9a-f]{12})', b''.join(lines))
                        with sink.lock:
                            conn['tx'].append(toks[0].decode() if toks else None)
                        self.wfile.write(b'250 2.0.0 counted\r\n')
                        if sink.mode == 'close':
                            return
                    elif verb == b'QUIT':
                        with sink.lock:
                            conn['quit'] = True
                        self.wfile.write(b'221 2.0.0 bye\r\n')
                        return
                    else:
                        self.wfile.write(b'250 2.0.0 ok\r\n')

        self.server = harness.serve_tcp(Handler)
        self.port = self.server.server_address[1]

    def stop(self):
        harness.stop_tcp(self.server)

    def tokens(self):
        with self.lock:
            return [t for c in self.conns for t in c['tx']]


class Reuse(unittest.TestCase):

    def run_gateway(self, mode='normal', n=N, **cfg):
        sink = CountingSink(mode)
        self.addCleanup(sink.stop)
        base = {'smarthost': '127.0.0.1:%d' % sink.port, 'max_deliveries': 8,
                'max_per_destination': 2, 'connection_idle_timeout': 60,
                'retry_min': 3600, 'retry_max': 3600, 'command_timeout': 10}
        base.update(cfg)
        gw = harness.Instance('reuse', **base)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        toks = [uuid.uuid4().hex[:12] for _ in range(n)]
        with smtplib.SMTP(*gw.smtp_addr, timeout=10) as c:
            for i, t in enumerate(toks):
                c.sendmail('a@localhost', ['bob%d@example.net' % i],
                           'Subject: %d\r\n\r\nbody token-%s\r\n' % (i, t))
        wait_until(lambda: gw.read_log('smtpd').count('event=relay-sent ') >= n, 30,
                   '%d relay-sent lines' % n)
        got = sink.tokens()
        self.assertEqual(sorted(got), sorted(toks), 'every message exactly once')
        smtpd_log = gw.read_log('smtpd')
        self.assertEqual(len(re.findall(r'event=relay-sent id=\S+ attempts=1 ', smtpd_log)), n,
                         'a message needed more than one attempt')
        self.assertNotIn('event=relay-deferred', smtpd_log)
        return gw, sink

    def test_fewer_connections_than_messages(self):
        """20 messages to one destination: at most max_per_destination connections, QUIT at shutdown"""
        gw, sink = self.run_gateway()
        with sink.lock:
            nconns = len(sink.conns)
        self.assertLessEqual(nconns, 2, 'connections: %s' % sink.conns)
        smtpd_log = gw.read_log('smtpd')
        self.assertGreaterEqual(len(re.findall(r'event=relay-attempt .* reused=yes conn=\d+', smtpd_log)),
                                N - 2)
        self.assertGreaterEqual(smtpd_log.count('event=relay-sent ') - smtpd_log.count('reused=no reply'),
                                N - 2)
        gw.stop('smtpd')
        wait_until(lambda: all(c['quit'] for c in sink.conns), 5, 'QUIT on the idle connections')
        log('  %d messages over %d connections (%s)'
            % (N, nconns, ', '.join(str(len(c['tx'])) for c in sink.conns)))

    def test_idle_timeout_zero_disables_reuse(self):
        """connection_idle_timeout = 0: one connection per message, each with QUIT"""
        gw, sink = self.run_gateway(connection_idle_timeout=0)
        with sink.lock:
            self.assertEqual(len(sink.conns), N)
            self.assertTrue(all(len(c['tx']) == 1 and c['quit'] and c['rset'] == 0 for c in sink.conns))
        self.assertNotIn('reused=yes', gw.read_log('smtpd'))

    def test_reuse_count_limit(self):
        """connection_reuse_count_limit = 2: no connection carries more than 3 messages"""
        gw, sink = self.run_gateway(connection_reuse_count_limit=2)
        with sink.lock:
            per = [len(c['tx']) for c in sink.conns]
        self.assertLessEqual(max(per), 3, per)
        self.assertGreater(max(per), 1, 'no reuse at all: %s' % per)
        self.assertGreaterEqual(len(per), 7, per)
        log('  transactions per connection: %s' % per)

    def test_idle_connection_expires_with_quit(self):
        """connection_idle_timeout = 1: the idle connections say QUIT on their own"""
        gw, sink = self.run_gateway(n=4, connection_idle_timeout=1)
        wait_until(lambda: all(c['quit'] for c in sink.conns), 10, 'QUIT after the idle timeout')
        self.assertIn('event=relay-conn-expired', gw.read_log('smtpd'))
        self.assertIsNone(gw.procs['smtpd'].poll(), 'smtpd stopped: the QUIT came from the shutdown')

    def test_rset_421_reconnects(self):
        """RSET answered with 421: a fresh connection, nothing lost, duplicated or deferred"""
        gw, sink = self.run_gateway('rset421')
        with sink.lock:
            self.assertTrue(all(len(c['tx']) == 1 for c in sink.conns))
            self.assertGreater(sum(c['rset'] for c in sink.conns), 0)
        self.assertIn('event=relay-reuse-failed', gw.read_log('smtpd'))

    def test_rset_refused_drops_the_pipelined_transaction(self):
        """RSET refused with 550 while MAIL, RCPT and DATA follow it in the group: that connection is
        dropped before any data, a fresh one carries the message, nothing lost, duplicated or deferred"""
        gw, sink = self.run_gateway('rset550')
        with sink.lock:
            self.assertGreater(sum(c['rset'] for c in sink.conns), 0)
            self.assertTrue(all(len(c['tx']) == 1 for c in sink.conns), sink.conns)
        self.assertRegex(gw.read_log('smtpd'), r'event=relay-reuse-failed .*why="550 5\.5\.1 ')

    def test_server_closes_after_each_message(self):
        """the server closes every connection after its message: reconnects, nothing lost or duplicated"""
        gw, sink = self.run_gateway('close')
        with sink.lock:
            self.assertEqual(len(sink.conns), N)


if __name__ == '__main__':
    unittest.main(verbosity=2)
