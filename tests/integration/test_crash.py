#!/usr/bin/python3
"""test_crash - kill -9 of spoolgate-smtpd in the middle of a burst.

Several threads, each with its own smtplib connection, send N=200
messages to bob@localhost and remote@example.net (queued for the relay;
the smarthost accepts connections and stays silent) and record which got "250 ... queued as <id>".
Once part of them is acknowledged, smtpd is killed with SIGKILL; it is
restarted (recovery runs) and then: every acknowledged message is in
mail/bob/new under its id; nothing is left in spool/tmp or
mail/bob/tmp; every acknowledged message has its queue record and data
(no record without data, no data without record); every visible message is complete (its exact content), was
really sent by a client, and is there once.  "250 means durable."
Three rounds on the same spool, killed at different points.
"""

import os
import queue
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
import harness
from harness import log, queued_id, split_stored

N = 200
THREADS = 8
KILL_AFTER = (60, 20, 120)	# acknowledged messages before the kill, per round
RUN = uuid.uuid4().hex[:8]


def make_message(rnd, i):
    tok = 'crash-%s-%d-%03d' % (RUN, rnd, i)
    lines = ''.join('%s line %03d %s\r\n' % (tok, n, 'x' * 50) for n in range(60))
    return tok, ('Subject: %s\r\n\r\n%sEND %s\r\n' % (tok, lines, tok)).encode()


def parse_token(tok):
    _, _, rnd, i = tok.split('-')
    return int(rnd), int(i)


class Burst:
    """N messages from THREADS connections; kill_after acknowledged -> event."""

    def __init__(self, gw, rnd, kill_after):
        self.gw, self.rnd = gw, rnd
        self.work = queue.Queue()
        for i in range(N):
            self.work.put(i)
        self.lock = threading.Lock()
        self.acked = {}			# token -> id
        self.attempted = set()		# tokens whose DATA was started
        self.errors = []
        self.kill_after = kill_after
        self.enough = threading.Event()
        self.threads = [threading.Thread(target=self.sender, daemon=True)
                        for _ in range(THREADS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def sender(self):
        try:
            s = smtplib.SMTP('127.0.0.1', self.gw.port, local_hostname='crash.example',
                             timeout=20)
            s.ehlo()
        except (OSError, smtplib.SMTPException) as e:
            with self.lock:
                self.errors.append('connect: %r' % e)
            return
        try:
            while True:
                try:
                    i = self.work.get_nowait()
                except queue.Empty:
                    break
                tok, msg = make_message(self.rnd, i)
                code, text = s.mail('alice@example.org')
                if code != 250:
                    raise smtplib.SMTPResponseException(code, text)
                for rcpt in ('bob@localhost', 'remote@example.net'):
                    code, text = s.rcpt(rcpt)
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, text)
                with self.lock:
                    self.attempted.add(tok)
                code, text = s.data(msg)
                if code != 250:
                    raise smtplib.SMTPResponseException(code, text)
                with self.lock:
                    self.acked[tok] = queued_id(text)
                    if len(self.acked) >= self.kill_after:
                        self.enough.set()
        except (OSError, smtplib.SMTPException) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            try:
                s.close()
            except Exception:
                pass


class Crash(unittest.TestCase):

    def check_spool(self, gw, acked, attempted):
        """Every acknowledged message is stored under its id; every stored
        message is complete, was sent by a client, and is stored once."""
        files = gw.mailbox_new('bob')
        by_token = {}
        for name in files:
            _, _, content = split_stored(gw.read_mail('bob', name))
            first = content.split(b'\n', 1)[0]
            self.assertTrue(first.startswith(b'Subject: crash-'), '%s: %r' % (name, first))
            tok = first[len(b'Subject: '):].decode()
            self.assertIn(tok, attempted, '%s holds %s, which no client sent' % (name, tok))
            self.assertEqual(content, make_message(*parse_token(tok))[1].replace(b'\r\n', b'\n'),
                             '%s is not complete or differs (%d bytes)' % (name, len(content)))
            self.assertNotIn(tok, by_token, '%s stored twice: %s %s'
                             % (tok, by_token.get(tok), name))
            by_token[tok] = name
        lost = [tok for tok in acked if tok not in by_token]
        self.assertEqual(lost, [], 'acknowledged but missing after kill -9: %s' % lost[:5])
        for tok, msgid in acked.items():
            self.assertTrue(by_token[tok].startswith(msgid + '.'),
                            '%s acknowledged as %s but stored as %s' % (tok, msgid, by_token[tok]))
        self.assertEqual(gw.listdir('tmp'), [], 'temporaries left in spool/tmp after recovery')
        self.assertEqual(gw.listdir('mail', 'bob', 'tmp'), [],
                         'temporaries left in mail/bob/tmp after recovery')
        self.assertGreaterEqual(len(files), len(acked))
        self.assertLessEqual(len(files), len(attempted))
        # The relay's half: every acknowledged message has its record and its
        # data; no record without data, no data without a record.  The new
        # daemon's relay may be claiming records (queue/ -> active/) while we
        # list: a listing is retried before it counts as inconsistent.
        for tok, msgid in acked.items():
            where, text = gw.find_record(msgid)
            self.assertIn(where, ('queue', 'active'), 'record of acknowledged %s: %s'
                          % (msgid, where))

        def consistent():
            data_ids = set(gw.listdir('data'))
            record_ids = gw.record_ids()
            return (data_ids, record_ids) if data_ids == record_ids else None
        try:
            _, record_ids = harness.wait_until(consistent, 5, 'data/ and records to match')
        except AssertionError:
            data_ids, record_ids = set(gw.listdir('data')), gw.record_ids()
            self.fail('data/ without a record: %s; records without data/: %s'
                      % (sorted(data_ids - record_ids)[:5], sorted(record_ids - data_ids)[:5]))
        for msgid in record_ids:
            where, text = gw.find_record(msgid)
            rec = harness.parse_record(text)
            with open(gw.path('data', msgid), 'rb') as f:
                f.seek(int(rec['data-offset']))
                data = f.read()
            tok = data.split(b'\nSubject: ', 1)[1].split(b'\n', 1)[0].decode()
            self.assertTrue(data.endswith(b'\nEND %s\n' % tok.encode()),
                            'queued data of %s is not complete' % msgid)
        return len(files)

    def test_kill9_during_burst(self):
        """every 250'd message survives kill -9; no partial message, no temporary left"""
        # The smarthost accepts connections and never says a word: the relay
        # claims a few records and waits, so the spool holds still while it
        # is checked (no relay temporaries, no records moving).
        stall = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(stall.close)
        stall.bind(('127.0.0.1', 0))
        stall.listen(128)
        gw = harness.Instance('crash', smarthost='127.0.0.1:%d' % stall.getsockname()[1],
                              connect_timeout=300, command_timeout=300)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        acked, attempted = {}, set()
        for rnd, kill_after in enumerate(KILL_AFTER):
            burst = Burst(gw, rnd, kill_after)
            burst.start()
            self.assertTrue(burst.enough.wait(60),
                            'round %d: only %d of %d acknowledged within 60s; errors: %s'
                            % (rnd, len(burst.acked), kill_after, burst.errors[:3]))
            gw.kill('smtpd', signal.SIGKILL)
            self.assertTrue(burst.join(30), 'a sender thread hangs')
            with burst.lock:
                acked.update(burst.acked)
                attempted |= burst.attempted
            log('  round %d: killed -9 after %d acknowledged, %d started, %d client errors'
                % (rnd, len(burst.acked), len(burst.attempted), len(burst.errors)))
            self.assertLess(len(burst.acked), N,
                            'the burst ended before the kill: nothing was tested')
            mark = gw._log_size('smtpd')
            gw.start_smtpd()
            recovery = [l for l in gw.read_log('smtpd', mark).splitlines()
                        if re.search(r'event=recovery( |$)', l)]
            self.assertTrue(recovery, 'no event=recovery line after the restart')
            log('  ' + recovery[0].split('event=', 1)[1])
            stored = self.check_spool(gw, acked, attempted)
            log('  after recovery: %d acknowledged, %d stored (%d committed without their '
                '250), tmp/ empty' % (len(acked), stored, stored - len(acked)))

        # And the restarted daemon takes mail again.
        with smtplib.SMTP('127.0.0.1', gw.port, timeout=15) as s:
            s.ehlo('crash.example')
            s.mail('alice@example.org')
            s.rcpt('bob@localhost')
            code, text = s.data(b'Subject: after the crash\r\n\r\nfine\r\n')
            self.assertEqual(code, 250, text)
            self.assertIsNotNone(gw.find_mail('bob', queued_id(text)))


if __name__ == '__main__':
    harness.main()
