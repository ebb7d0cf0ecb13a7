#!/usr/bin/python3
"""test_fs_wait - waiting through the mount without polling (fs/waiters.c).

inbox/<mailbox>/.next: a bash loop `while f=$(cat inbox/box/.next.N); do
...; rm ...; done` with no sleep handles 1,000 messages that 8 smtplib
clients send at once, each exactly once; a blocked reader wakes as soon as
a message arrives (inotify: faster than the daemon's 10 s rescan); the
oldest message is the answer and stays it until removed; `.next.1` fails
with ETIMEDOUT after a second, `.next.0` at once; a reader killed (SIGKILL,
SIGINT) while blocked exits at once and the daemon keeps serving; SIGTERM
to the daemon with a reader blocked answers it and unmounts; the mailbox's
mtime changes on arrival.

outbox/wait/: `cp report outbox/wait/` exits 0 only once an aiosmtpd sink
has said 250 (the sink delays its answer), keeps waiting through a 451 until
the retry's 250, fails with the errno of the sink's 550 5.1.1 (`cp: ...: No
such file or directory`) and of a 552 5.2.2 (`Disk quota exceeded`); with
nothing listening it fails with `Connection timed out` after wait_timeout,
the message still queued, and a SIGINT ends the waiting cp at once (queued
still); with keep_sent = no the removed record means delivered (exit 0).
Skipped (77) where FUSE is not available.
"""

import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, wait_until
from test_relay import token, start_sink_for

MESSAGES = 1000
SENDERS = 8
WAVES = 10		# the loop empties the mailbox and blocks between waves
WAKE_LIMIT = 1.5	# seconds from the 250 to a blocked reader's answer (rescan: 10 s)


def setUpModule():
    why = harness.fuse_available()
    if why:
        raise unittest.SkipTest(why)


def send(gw, box, subject, body='body\n'):
    with smtplib.SMTP('127.0.0.1', gw.port, timeout=30) as s:
        s.sendmail('alice@example.org', ['%s@localhost' % box],
                   ('From: alice@example.org\r\nTo: %s@localhost\r\nSubject: %s\r\n\r\n%s'
                    % (box, subject, body)).encode())


def bash(script, cwd, timeout):
    return subprocess.run(['bash', '-c', script], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


class Next(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('fswait-next')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()

    def box(self):
        """A fresh mailbox with its first message delivered and removed (so it exists, empty)."""
        box = 'w' + token()
        send(self.gw, box, 'first')
        path = os.path.join(self.gw.mnt, 'inbox', box)
        for name in wait_until(lambda: os.listdir(path), 10, 'the first message of ' + box):
            os.unlink(os.path.join(path, name))
        return box

    def reader(self, box, name='.next'):
        return subprocess.Popen(['cat', os.path.join(self.gw.mnt, 'inbox', box, name)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def test_shell_loop_handles_each_message_once(self):
        """a bash loop without sleep handles 1,000 messages from 8 SMTP clients, each once,
        blocking in .next between 10 waves"""
        box = self.box()
        handled = os.path.join(self.gw.dir, 'handled-' + box)
        script = ('n=0; while f=$(cat inbox/%s/.next.30); do '
                  'grep -m1 "^Subject:" "inbox/%s/$f" >> %s || exit 3; '
                  'rm "inbox/%s/$f" || exit 4; n=$((n+1)); [ $n -ge %d ] && break; done; '
                  'echo "handled=$n"' % (box, box, handled, box, MESSAGES))
        loop = subprocess.Popen(['bash', '-c', script], cwd=self.gw.mnt, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: loop.poll() is None and loop.kill())
        subjects = ['loop %s %d' % (box, i) for i in range(MESSAGES)]
        errors = []

        def sender(part):
            try:
                with smtplib.SMTP('127.0.0.1', self.gw.port, timeout=60) as s:
                    for subj in part:
                        s.sendmail('alice@example.org', ['%s@localhost' % box],
                                   ('From: alice@example.org\r\nTo: %s@localhost\r\n'
                                    'Subject: %s\r\n\r\nbody\r\n' % (box, subj)).encode())
            except Exception as e:		# reported below
                errors.append(e)

        def handled_count():
            with open(handled) if os.path.exists(handled) else open(os.devnull) as f:
                return sum(1 for _ in f)
        time.sleep(1)
        if loop.poll() is not None:
            self.fail('the loop did not wait on the empty mailbox: %s' % (loop.communicate(),))
        self.assertEqual(handled_count(), 0)
        # In waves, each sent by SENDERS clients at once once the loop has emptied the
        # mailbox: the loop blocks in .next between waves and is woken by each.
        t0 = time.monotonic()
        for w in range(WAVES):
            wave = subjects[w::WAVES]
            threads = [threading.Thread(target=sender, args=(wave[i::SENDERS],))
                       for i in range(SENDERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            if w < WAVES - 1:
                wait_until(lambda: handled_count() >= len(wave) * (w + 1) or loop.poll(), 300,
                           'the loop to handle wave %d' % w, interval=0.2)
                if loop.poll() is not None:
                    self.fail('the loop ended after wave %d: %s' % (w, loop.communicate()))
        out, err = loop.communicate(timeout=600)
        t_done = time.monotonic() - t0
        log('  %d messages in %d waves handled in %.1fs (%.1f ms each)' %
            (MESSAGES, WAVES, t_done, t_done * 1000 / MESSAGES))
        self.assertEqual(loop.returncode, 0, err)
        self.assertIn('handled=%d' % MESSAGES, out)
        with open(handled) as f:
            got = [line.rstrip('\n')[len('Subject: '):] for line in f]
        self.assertEqual(len(got), MESSAGES)
        self.assertEqual(len(set(got)), MESSAGES, 'a message was handled twice')
        self.assertEqual(set(got), set(subjects))
        self.assertEqual(self.gw.mailbox_new(box), [])

    def test_blocked_reader_wakes_on_arrival(self):
        """cat .next blocks on an empty mailbox and answers the new message within 1.5 s"""
        box = self.box()
        r = self.reader(box)
        self.addCleanup(lambda: r.poll() is None and r.kill())
        time.sleep(0.5)
        self.assertIsNone(r.poll(), 'cat .next did not block on an empty mailbox')
        send(self.gw, box, 'wake')
        t = time.monotonic()
        out, err = r.communicate(timeout=15)
        latency = time.monotonic() - t
        log('  a blocked .next answered %.3fs after the 250' % latency)
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(out, self.gw.mailbox_new(box)[0] + '\n')
        self.assertLess(latency, WAKE_LIMIT, 'woken by the rescan, not by inotify')

    def test_oldest_first_and_kept_until_removed(self):
        """.next answers the oldest message (never a name with a newline), the same one until
        it is removed; later reads of one open file are EOF"""
        box = self.box()
        for i in range(3):
            send(self.gw, box, 'order %d' % i)
        wait_until(lambda: len(self.gw.mailbox_new(box)) == 3, 10, 'three messages')
        # the oldest by its Maildir time, but a name one line cannot carry: never answered
        odd = os.path.join(self.gw.path('mail', box, 'new'), '1.M1P1Q1.odd\nname')
        with open(odd, 'w') as f:
            f.write('Subject: odd\n\n')
        self.addCleanup(os.unlink, odd)
        mbox = os.path.join(self.gw.mnt, 'inbox', box)
        seen = []
        for i in range(3):
            first = bash('cat .next', mbox, 10)
            again = bash('cat .next.0', mbox, 10)
            self.assertEqual(first.returncode, 0, first.stderr)
            self.assertEqual(first.stdout, again.stdout)
            name = first.stdout.rstrip('\n')
            with open(os.path.join(mbox, name)) as f:
                seen.append(re.search(r'^Subject: (.*)$', f.read(), re.M).group(1))
            os.unlink(os.path.join(mbox, name))
        self.assertEqual(seen, ['order 0', 'order 1', 'order 2'])
        # one open file: the line, then end of file
        send(self.gw, box, 'eof')
        with open(os.path.join(mbox, '.next'), 'rb', buffering=0) as f:
            line = f.read(4096)
            self.assertTrue(line.endswith(b'\n'))
            self.assertEqual(f.read(4096), b'')
        self.assertNotIn('.next', os.listdir(mbox))

    def test_timeout(self):
        """.next.1 fails with ETIMEDOUT after a second, .next.0 at once; bad names do not exist"""
        box = self.box()
        mbox = os.path.join(self.gw.mnt, 'inbox', box)
        t = time.monotonic()
        r = bash('cat .next.1', mbox, 20)
        elapsed = time.monotonic() - t
        self.assertEqual(r.returncode, 1)
        self.assertIn('Connection timed out', r.stderr)
        self.assertEqual(r.stdout, '')
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 5)
        t = time.monotonic()
        r = bash('cat .next.0', mbox, 20)
        self.assertIn('Connection timed out', r.stderr)
        self.assertLess(time.monotonic() - t, 1)
        for bad in ('.next.', '.next.x', '.next.-1', '.next.99999999', '.nextt'):
            self.assertFalse(os.path.exists(os.path.join(mbox, bad)), bad)
        with self.assertRaises(PermissionError):
            open(os.path.join(mbox, '.next'), 'w')

    def test_killed_reader_frees_its_request(self):
        """SIGKILL and SIGINT end a blocked reader at once; the daemon still answers"""
        box = self.box()
        for sig in (signal.SIGKILL, signal.SIGINT):
            r = self.reader(box)
            time.sleep(0.5)
            self.assertIsNone(r.poll())
            start = len(self.gw.read_log('fs'))
            r.send_signal(sig)
            try:
                r.wait(timeout=5)
            except subprocess.TimeoutExpired:
                r.kill()
                self.fail('a reader blocked in .next did not die of signal %d' % sig)
            self.assertEqual(r.returncode, -sig)
            wait_until(lambda: 'event=wait-interrupted' in self.gw.read_log('fs')[start:], 5,
                       'the daemon to log the interrupted request')
        send(self.gw, box, 'after')
        r = bash('cat inbox/%s/.next.10' % box, self.gw.mnt, 20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), self.gw.mailbox_new(box)[0])

    def test_mailbox_mtime_changes_on_arrival(self):
        """inbox/<box>'s mtime changes when a message arrives (cached attributes invalidated)"""
        box = self.box()
        path = os.path.join(self.gw.mnt, 'inbox', box)
        before = os.stat(path).st_mtime_ns
        time.sleep(0.02)
        send(self.gw, box, 'mtime')
        wait_until(lambda: os.stat(path).st_mtime_ns > before, 5, 'the mtime of inbox/' + box)

    def test_zz_stop_answers_blocked_reader(self):
        """SIGTERM to the daemon with a reader blocked: the reader gets an error, the mount goes"""
        box = self.box()
        r = self.reader(box)
        time.sleep(0.5)
        self.assertIsNone(r.poll())
        status = self.gw.stop('fs')
        out, err = r.communicate(timeout=10)
        self.assertEqual(status, 0)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Software caused connection abort', err)
        self.assertFalse(harness.is_mounted(self.gw.mnt))
        self.gw.start_fs()


def start_with_sink(cls, name, **cfg):
    """cls.sink (test_relay.Sink, aiosmtpd) and cls.gw relaying to it, both mounted and running."""
    start_sink_for(cls)
    cls.gw = harness.Instance(name, smarthost='127.0.0.1:%d' % cls.sink.port, **cfg)
    cls.addClassCleanup(cls.gw.cleanup)
    cls.gw.start_smtpd()
    cls.gw.start_fs()


class OutboxWait(unittest.TestCase):
    """outbox/wait/ against an aiosmtpd sink (test_relay.Sink)."""

    @classmethod
    def setUpClass(cls):
        start_with_sink(cls, 'fswait-out', retry_min=1, retry_max=1, wait_timeout=30)

    def report(self, tok, to='ops@example.net'):
        path = os.path.join(self.gw.dir, 'report-' + tok)
        with open(path, 'w') as f:
            f.write('From: backup@example.org\nTo: %s\nSubject: report %s\n\nall good %s\n'
                    % (to, tok, tok))
        return path

    def assert_plain_with_data(self, msgid, tok):
        """The drop was one file, an inline record; the relay's rewrite
        left a plain record and the same file as data/<id>, whose message
        starts at the new record's data-offset."""
        _, text = self.gw.find_record(msgid)
        self.assertNotIn('data: inline', text)
        with open(self.gw.path('data', msgid), 'rb') as f:
            data = f.read()
        self.assertIn(b'\ndata: inline\n', data, 'data/<id> is not the inline file')
        message = data[int(harness.parse_record(text)['data-offset']):]
        self.assertTrue(message.startswith(b'Received: '), message[:80])
        self.assertTrue(message.endswith(b'\n\nall good %s\n' % tok.encode()), message[-80:])

    def cp(self, src, timeout=60):
        t = time.monotonic()
        r = subprocess.run(['cp', src, 'outbox/wait/'], cwd=self.gw.mnt, capture_output=True,
                           text=True, timeout=timeout)
        return r, time.monotonic() - t

    def test_cp_returns_after_the_250(self):
        """cp into outbox/wait/ exits 0 only after the sink answered 250 (held 1.5 s)"""
        tok = token()
        self.sink.data_delay = lambda m: 1.5 if tok.encode() in m['data'] else 0
        self.addCleanup(setattr, self.sink, 'data_delay', None)
        r, elapsed = self.cp(self.report(tok))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.sink.find(tok)), 1, 'cp returned before the sink had it')
        self.assertGreaterEqual(elapsed, 1.5)
        ids = re.findall(r'event=wait-outcome id=(\S+) errno=0', self.gw.read_log('fs'))
        where = [self.gw.find_record(i)[0] for i in ids]
        self.assertIn('sent', where)
        self.assert_plain_with_data(ids[where.index('sent')], tok)
        self.assertIn('report-' + tok, os.listdir(os.path.join(self.gw.mnt, 'outbox', 'wait')))
        self.assertNotIn('report-' + tok, os.listdir(os.path.join(self.gw.mnt, 'outbox')))

    def test_deferral_keeps_waiting(self):
        """a 451 then the retry's 250: cp waits through the deferral and exits 0"""
        tok = token()
        tries = []

        def rule(m):
            if tok.encode() in m['data']:
                tries.append(1)
                if len(tries) == 1:
                    return '451 4.3.0 try again later'
            return None
        self.sink.data_rule = rule
        self.addCleanup(setattr, self.sink, 'data_rule', None)
        r, elapsed = self.cp(self.report(tok))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(tries), 2)
        self.assertEqual(len(self.sink.find(tok)), 1)

    def refused(self, reply, strerror):
        tok = token()
        rcpt = 'nobody-%s@example.net' % tok
        self.sink.rcpt_rules[rcpt] = reply
        self.addCleanup(self.sink.rcpt_rules.pop, rcpt)
        src = self.report(tok, to=rcpt)
        r, _ = self.cp(src)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"^cp: .*'outbox/wait/report-%s': %s$"
                         % (tok, re.escape(strerror)))
        ids = re.findall(r'event=outbox-submitted id=(\S+) name=wait/report-%s ' % tok,
                         self.gw.read_log('fs'))
        self.assertEqual(len(ids), 1)
        self.assertEqual(self.gw.find_record(ids[0])[0], 'failed')
        self.assert_plain_with_data(ids[0], tok)

    def test_cp_fails_with_the_errno_of_a_550(self):
        """a 550 5.1.1 from the sink: cp fails with ENOENT, the message in failed/"""
        self.refused('550 5.1.1 no such user here', 'No such file or directory')

    def test_cp_fails_with_the_errno_of_a_552_5_2_2(self):
        """a 552 5.2.2 from the sink: cp fails with EDQUOT"""
        self.refused('552 5.2.2 mailbox full', 'Disk quota exceeded')

    def test_plain_outbox_does_not_wait(self):
        """cp into outbox/ returns before the sink answers (held 3 s)"""
        tok = token()
        self.sink.data_delay = lambda m: 3 if tok.encode() in m['data'] else 0
        self.addCleanup(setattr, self.sink, 'data_delay', None)
        t = time.monotonic()
        r = subprocess.run(['cp', self.report(tok), 'outbox/'], cwd=self.gw.mnt,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(time.monotonic() - t, 2)
        wait_until(lambda: self.sink.find(tok), 15, 'the sink to get it')


class OutboxWaitNotKept(unittest.TestCase):
    """keep_sent = no: the record of a delivered message is removed, not moved to sent/."""

    @classmethod
    def setUpClass(cls):
        start_with_sink(cls, 'fswait-notkept', keep_sent=False, wait_timeout=30)

    def test_cp_returns_0_when_the_record_goes(self):
        """cp into outbox/wait/ exits 0 once the delivered record is removed"""
        tok = token()
        src = os.path.join(self.gw.dir, 'report-' + tok)
        with open(src, 'w') as f:
            f.write('From: backup@example.org\nTo: ops@example.net\nSubject: %s\n\nx\n' % tok)
        r = subprocess.run(['cp', src, 'outbox/wait/'], cwd=self.gw.mnt, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.sink.find(tok)), 1)
        ids = re.findall(r'event=outbox-submitted id=(\S+) name=wait/report-%s ' % tok,
                         self.gw.read_log('fs'))
        self.assertEqual(self.gw.find_record(ids[0])[0], None)


class OutboxWaitTimeout(unittest.TestCase):
    """Nothing listens at the smarthost: the close gives up after wait_timeout."""

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('fswait-dead', retry_min=1, retry_max=1, wait_timeout=2)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()

    def test_timeout_leaves_it_queued(self):
        """cp fails with ETIMEDOUT after wait_timeout; the message stays in queue/"""
        tok = token()
        src = os.path.join(self.gw.dir, 'report-' + tok)
        with open(src, 'w') as f:
            f.write('From: backup@example.org\nTo: ops@example.net\nSubject: %s\n\nx\n' % tok)
        t = time.monotonic()
        r = subprocess.run(['cp', src, 'outbox/wait/'], cwd=self.gw.mnt, capture_output=True,
                           text=True, timeout=30)
        elapsed = time.monotonic() - t
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"^cp: .*'outbox/wait/report-%s': Connection timed out$" % tok)
        self.assertGreaterEqual(elapsed, 1.9)
        self.assertLess(elapsed, 10)
        ids = re.findall(r'event=outbox-submitted id=(\S+) name=wait/report-%s ' % tok,
                         self.gw.read_log('fs'))
        self.assertEqual(len(ids), 1)
        self.assertIn(self.gw.find_record(ids[0])[0], ('queue', 'active'))


    def test_interrupted_writer_leaves_it_queued(self):
        """SIGINT to a cp waiting in close(): it ends at once, the message stays queued"""
        tok = token()
        src = os.path.join(self.gw.dir, 'report-' + tok)
        with open(src, 'w') as f:
            f.write('From: backup@example.org\nTo: ops@example.net\nSubject: %s\n\nx\n' % tok)
        start = len(self.gw.read_log('fs'))
        cp = subprocess.Popen(['cp', src, 'outbox/wait/'], cwd=self.gw.mnt,
                              stderr=subprocess.PIPE, text=True)
        wait_until(lambda: 'name=wait/report-%s ' % tok in self.gw.read_log('fs')[start:], 5,
                   'the submission')
        time.sleep(0.3)
        self.assertIsNone(cp.poll(), 'cp did not wait')
        cp.send_signal(signal.SIGINT)
        try:
            cp.wait(timeout=1.5)	# well before wait_timeout = 2 s after the close
        except subprocess.TimeoutExpired:
            cp.kill()
            self.fail('a cp waiting in outbox/wait/ did not die of SIGINT')
        self.assertEqual(cp.returncode, -signal.SIGINT)
        self.assertIn('event=wait-interrupted kind=outcome', self.gw.read_log('fs')[start:])
        ids = re.findall(r'event=outbox-submitted id=(\S+) name=wait/report-%s ' % tok,
                         self.gw.read_log('fs'))
        self.assertIn(self.gw.find_record(ids[0])[0], ('queue', 'active'))


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS))
