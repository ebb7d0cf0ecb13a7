#!/usr/bin/python3
"""test_responsive - a slow disk stalls no session but the one that waits for it.

spoolgate-smtpd runs with an LD_PRELOAD shim (tests/shim/slow_sync.c) that
makes every fdatasync(2) take 2 seconds, as on a disk with slow flushes.

* While one session's message is being committed, another session is served:
  its EHLO, NOOP and VRFY get their replies before the first session gets
  its 250 (the event loop never syncs; the committer thread does).
* Messages whose DATA ends while a commit is under way wait together and are
  committed as one batch: the committer's statistics show a batch of more
  than one (group commit).
* Every message still gets its 250 and is in the mailbox.

* The relay's delivery slot is free once the sink has answered: with
  max_deliveries = 1 and three messages queued, the sink gets the second
  message while the first one's record is still being committed (not yet in
  sent/, no relay-sent line for it), over the same connection; all three end
  in sent/, each delivered once.  Killed with SIGKILL while those commits
  wait for the disk, it delivers the uncommitted messages again after
  recovery: none lost, each record in sent/ once, nothing left in active/.
  With six queued and a 30 s fdatasync it claims four (4 x max_deliveries)
  and leaves two in queue/: a slow disk holds the relay back.

The checks are on the order of events, not on durations: the shim's 2 s
sleep only makes the window wide.
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
from harness import RawSMTP, assert_reply, log, queued_id

SLOW_MS = 2000
FOLLOWERS = 4


def start_transaction(tc, gw, subject):
    """A session that has sent a whole message and not read the final reply."""
    c = RawSMTP(gw.smtp_addr)
    tc.addCleanup(c.close)
    c.ehlo()
    c.send(b'MAIL FROM:<a@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n')
    for code in (250, 250, 354):
        assert_reply(tc, c.reply(), code)
    c.send(b'Subject: ' + subject.encode() + b'\r\n\r\nbody\r\n.\r\n')
    return c


class Responsive(unittest.TestCase):

    def setUp(self):
        self.shim = os.environ.get('SPOOLGATE_SLOW_SYNC_SHIM', '')
        if not os.path.exists(self.shim):
            self.skipTest('SPOOLGATE_SLOW_SYNC_SHIM not built (run through meson test)')
        self.gw = harness.Instance('responsive')
        self.addCleanup(self.gw.cleanup)
        self.gw.start_smtpd(env={'LD_PRELOAD': self.shim,
                                 'SPOOLGATE_SLOW_FDATASYNC_MS': str(SLOW_MS)})

    def commits_in_flight(self):
        return len(re.findall(r'event=state .* old=data new=commit', self.gw.read_log('smtpd')))

    def test_other_sessions_served_during_a_slow_commit(self):
        """a 2 s fdatasync: another session is served meanwhile; waiting commits share a batch"""
        gw = self.gw
        first = start_transaction(self, gw, 'first')
        harness.wait_until(lambda: self.commits_in_flight() >= 1, 10, 'the first commit to start')

        other = RawSMTP(gw.smtp_addr)
        self.addCleanup(other.close)
        other.ehlo()
        assert_reply(self, other.cmd('NOOP'), 250)
        assert_reply(self, other.cmd('VRFY bob'), 252)
        self.assertTrue(first.nothing_more(0.01),
                        'the first 250 came before the other session was served: '
                        'the test did not overlap a commit')
        log('  another session served while the first commit syncs')

        followers = [start_transaction(self, gw, 'follower %d' % i) for i in range(FOLLOWERS)]
        harness.wait_until(lambda: self.commits_in_flight() >= 1 + FOLLOWERS, 10,
                           'the followers to reach their commit')

        ids = []
        for c in [first] + followers:
            r = c.reply(timeout=60)
            assert_reply(self, r, 250)
            ids.append(queued_id(r.text))
        for msgid in ids:
            self.assertIsNotNone(gw.find_mail('bob', msgid), 'message %s not in mail/bob/new' % msgid)

        gw.stop('smtpd')
        jobs, batches, max_batch = harness.batch_stats(self, gw.read_log('smtpd'), 'commitq-stats',
                                                       'jobs')
        log('  commitq: %d jobs in %d batches, largest %d' % (jobs, batches, max_batch))
        self.assertEqual(jobs, 1 + FOLLOWERS)
        self.assertGreaterEqual(max_batch, 2, 'commits that waited together were not grouped')
        self.assertLess(batches, jobs)


class GatedSink:
    """A small SMTP sink whose greeting waits for open(); at each MAIL it
    takes a snapshot of what the gateway has made durable by then: the
    names in sent/ and the ids of the relay-sent lines in smtpd's log.
    tx: one dict per transaction, in the order the sink got them."""

    def __init__(self, gw_ref):
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.tx = []
        self.conns = 0
        sink = self

        def snapshot(conn):
            gw = gw_ref()
            return {'sent': set(gw.listdir('sent')),
                    'logged': set(re.findall(r'event=relay-sent id=(\S+)', gw.read_log('smtpd'))),
                    'conn': conn, 'token': None}

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                sink.gate.wait()
                with sink.lock:
                    sink.conns += 1
                    self.conn = sink.conns
                try:
                    self.serve()
                except OSError:
                    pass		# a connection of the gateway stopped before the gate opened

            def serve(self):
                self.wfile.write(b'220 gated.test ESMTP\r\n')
                tx = None
                while True:
                    line = self.rfile.readline(4096)
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb == b'EHLO':
                        self.wfile.write(b'250-gated.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n')
                    elif verb == b'MAIL':
                        tx = snapshot(self.conn)
                        self.wfile.write(b'250 2.1.0 ok\r\n')
                    elif verb == b'DATA':
                        self.wfile.write(b'354 go ahead\r\n')
                        lines = []
                        while True:
                            dl = self.rfile.readline(1 << 20)
                            if not dl:
                                return		# cut before the end of the data: not taken
                            if dl == b'.\r\n':
                                break
                            lines.append(dl)
                        toks = re.findall(rb'token-([0-9a-f]{12})', b''.join(lines))
                        tx['token'] = toks[0].decode() if toks else None
                        with sink.lock:
                            sink.tx.append(tx)
                        self.wfile.write(b'250 2.0.0 got it\r\n')
                    elif verb == b'QUIT':
                        self.wfile.write(b'221 2.0.0 bye\r\n')
                        return
                    else:
                        self.wfile.write(b'250 2.0.0 ok\r\n')

        self.server = harness.serve_tcp(Handler)
        self.port = self.server.server_address[1]

    def open(self):
        self.gate.set()

    def stop(self):
        self.gate.set()
        harness.stop_tcp(self.server)


class SlotFreeDuringCommit(unittest.TestCase):
    """max_deliveries = 1, a slow disk: the next message goes out while the last one commits."""

    MESSAGES = 3

    def setUp(self):
        self.shim = os.environ.get('SPOOLGATE_SLOW_SYNC_SHIM', '')
        if not os.path.exists(self.shim):
            self.skipTest('SPOOLGATE_SLOW_SYNC_SHIM not built (run through meson test)')
        self.gw = None
        self.sink = GatedSink(lambda: self.gw)
        self.addCleanup(self.sink.stop)
        self.gw = harness.Instance('slot', smarthost='127.0.0.1:%d' % self.sink.port, max_deliveries=1,
                                   connection_idle_timeout=60, retry_min=3600, retry_max=3600,
                                   command_timeout=30)
        self.addCleanup(self.gw.cleanup)

    def queue_messages(self, n=MESSAGES):
        """n messages queued while the sink holds its greeting; smtpd stopped
        (its one claim goes back to queue/).  Returns {token: id}."""
        gw = self.gw
        gw.start_smtpd()
        ids = {}
        with smtplib.SMTP(*gw.smtp_addr, timeout=10) as c:
            c.ehlo()
            for i in range(n):
                tok = uuid.uuid4().hex[:12]
                c.mail('a@localhost')
                c.rcpt('bob%d@example.net' % i)
                code, reply = c.data('Subject: %d\r\n\r\nbody token-%s\r\n' % (i, tok))
                self.assertEqual(code, 250, reply)
                ids[tok] = queued_id(reply)
        self.assertEqual(gw.stop('smtpd'), 0)
        self.assertEqual(sorted(gw.listdir('queue')), sorted(ids.values()))
        self.assertEqual(gw.listdir('active'), [])
        return ids

    def test_next_delivery_while_the_record_commits(self):
        """the sink gets message 2 before message 1's record is in sent/ or logged as relay-sent"""
        gw, sink = self.gw, self.sink
        ids = self.queue_messages()
        gw.start_smtpd(env={'LD_PRELOAD': self.shim, 'SPOOLGATE_SLOW_FDATASYNC_MS': str(SLOW_MS)})
        sink.open()
        harness.wait_until(lambda: gw.read_log('smtpd').count('event=relay-sent ') >= self.MESSAGES, 60,
                           '%d relay-sent lines' % self.MESSAGES)
        with sink.lock:
            tx = list(sink.tx)
        self.assertEqual(sorted(t['token'] for t in tx), sorted(ids), 'every message exactly once')
        self.assertEqual(sorted(gw.listdir('sent')), sorted(ids.values()))
        first, second = ids[tx[0]['token']], tx[1]
        log('  at the second MAIL: sent/ %s, relay-sent logged for %s; first is %s' %
            (sorted(second['sent']), sorted(second['logged']), first))
        self.assertNotIn(first, second['sent'],
                         'the first record was in sent/ before the second message went out: '
                         'the slot waited for the commit')
        self.assertNotIn(first, second['logged'],
                         'relay-sent for the first message came before the second MAIL')
        self.assertEqual(second['conn'], tx[0]['conn'], 'the second message did not reuse the connection')
        self.assertIn(first, re.findall(r'event=relay-sent id=(\S+)', gw.read_log('smtpd')))

    def test_kill9_while_commits_are_in_flight(self):
        """at most 4 x max_deliveries commits in flight; kill -9 then: delivered again, none lost"""
        gw, sink = self.gw, self.sink
        ids = self.queue_messages(6)
        gw.start_smtpd(env={'LD_PRELOAD': self.shim, 'SPOOLGATE_SLOW_FDATASYNC_MS': '30000'})
        sink.open()
        # max_deliveries = 1: four claims in all (one delivering, three
        # committing, or four committing), the other two stay in queue/.
        harness.wait_until(lambda: len(sink.tx) >= 4, 30, 'the sink to get four messages')
        # The fourth outcome is known (its slot is free) once its relay-rcpt line is written.
        harness.wait_until(lambda: gw.read_log('smtpd').count('event=relay-rcpt ') >= 4, 30,
                           'the fourth outcome')
        self.assertEqual(len(gw.listdir('queue')), 2, 'claims beyond 4 x max_deliveries: %s'
                         % gw.listdir('active'))
        self.assertEqual(len(gw.listdir('active')), 4)
        self.assertEqual(len(sink.tx), 4)
        gw.kill('smtpd')
        with sink.lock:
            before = [t['token'] for t in sink.tx]
        committed = set(gw.listdir('sent'))
        self.assertLess(len(committed), len(before), 'every record was committed before the kill')
        log('  killed with %d delivered, %d in sent/' % (len(before), len(committed)))
        # Recovery gives the claims back; the uncommitted ones are delivered again.
        gw.start_smtpd()
        harness.wait_until(lambda: sorted(gw.listdir('sent')) == sorted(ids.values()), 30,
                           'every record in sent/')
        self.assertEqual(gw.listdir('active'), [])
        self.assertEqual(gw.listdir('queue'), [])
        with sink.lock:
            after = [t['token'] for t in sink.tx]
        self.assertEqual(set(after), set(ids), 'a message never reached the sink')
        for tok in before:
            if ids[tok] not in committed:
                self.assertEqual(after.count(tok), 2, 'an uncommitted delivery was not made again')


if __name__ == '__main__':
    harness.main()
