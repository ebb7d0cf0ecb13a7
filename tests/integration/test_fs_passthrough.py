#!/usr/bin/python3
"""test_fs_passthrough - inbox/ messages read by the kernel from the spool file
(fs/passthrough.c: FUSE passthrough on libfuse 3.14).

With [fs] passthrough = yes (the default) INIT agrees to passthrough
(event=passthrough state=on) and an open inbox/ message is read without the
daemon: with spoolgate-fs stopped (SIGSTOP), pread(2) of a message opened
before, and page faults of a message mmap'ed before, return the Maildir
file's bytes; close(2) of a message sends no FLUSH either.  Two opens of one
message at once share one backing file (the kernel allows one per inode):
both read the same bytes, and the counters at unmount say so
(event=passthrough-stats: opens=, backing_files=, failed=0, open_now=0).  A
message removed from the spool while open is still read whole; a message
opened, closed and opened again gets a backing file again.  With
passthrough = no, INIT says state=off reason=not-wanted and the same read
waits for the stopped daemon (then returns the bytes after SIGCONT): the
two cases tell the feature from a page cache that happened to be warm.
Each case reads a message that was never read through the mount before, so
no page of it is in the mount's cache.  Skipped (77) where FUSE is not
available, or where the kernel does not offer passthrough (before 6.9, or
CONFIG_FUSE_PASSTHROUGH off): state=off reason=kernel.
"""

import hashlib
import os
import re
import select
import signal
import smtplib
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import wait_until
from test_relay import token

SIZE = 3 << 20		# bytes of a message: many read requests without passthrough
STOPPED_WAIT = 5.0	# seconds a read may take with the daemon stopped


# Maps the message, says so, and at "go" prints the SHA-256 of its pages.
MMAP_CHILD = r"""
import hashlib, mmap, os, sys
m = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 0, prot=mmap.PROT_READ)
print('mapped', flush=True)
sys.stdin.readline()
print(hashlib.sha256(m[:]).hexdigest(), flush=True)
"""


def setUpModule():
    why = harness.fuse_available()
    if why:
        raise unittest.SkipTest(why)


def deliver(gw, box):
    """A new message of SIZE in box over SMTP: (its mount path, its bytes on disk)."""
    line = '%s\n' % token()
    body = (line * (SIZE // len(line) + 1))[:SIZE]
    before = set(gw.mailbox_new(box))
    with smtplib.SMTP('127.0.0.1', gw.port, timeout=30) as s:
        s.sendmail('alice@example.org', ['%s@localhost' % box],
                   'From: alice@example.org\r\nSubject: big\r\n\r\n' + body)
    name = wait_until(lambda: sorted(set(gw.mailbox_new(box)) - before), 10, 'the delivery')[0]
    return os.path.join(gw.mnt, 'inbox', box, name), gw.read_mail(box, name)


def pread_all(fd):
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            return b''.join(chunks)
        chunks.append(b)
        off += len(b)


def in_thread(fn, timeout):
    """fn() on a thread: (finished within timeout, its result or None)."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    return (not t.is_alive(), out[0] if out else None, t)


class Stopped:
    """The fs daemon stopped (SIGSTOP) for the with-block, always resumed."""

    def __init__(self, gw):
        self.proc = gw.procs['fs']

    def __enter__(self):
        self.proc.send_signal(signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGCONT)


def fs_log_events(gw, event):
    return [l for l in gw.read_log('fs').splitlines() if ' event=%s ' % event in l + ' ']


def spool_files_held(gw, box):
    """Descriptors of the fs daemon on files of the mailbox box."""
    pid = gw.procs['fs'].pid
    prefix = gw.path('mail', box) + '/'
    held = []
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if target.startswith(prefix):
            held.append(target)
    return held


def stats(gw):
    lines = wait_until(lambda: fs_log_events(gw, 'passthrough-stats'), 10, 'passthrough-stats')
    return {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', lines[-1].split('event=')[1])}


class On(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('fspt-on')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()
        state = wait_until(lambda: fs_log_events(cls.gw, 'passthrough'), 10, 'event=passthrough')
        if 'reason=kernel' in state[0]:
            raise unittest.SkipTest('the kernel does not offer FUSE passthrough: ' + state[0])
        cls.box = 'pt' + token()

    def test_1_agreed_at_init(self):
        self.assertIn('state=on', fs_log_events(self.gw, 'passthrough')[0])

    def test_2_read_without_the_daemon(self):
        path, disk = deliver(self.gw, self.box)
        fd = os.open(path, os.O_RDONLY)
        try:
            with Stopped(self.gw):
                done, data, t = in_thread(lambda: pread_all(fd), STOPPED_WAIT)
            t.join(30)		# resumed: a read that waited ends now
            self.assertTrue(done, 'a read of an open inbox/ message waited for the stopped daemon')
            self.assertEqual(data, disk)
        finally:
            os.close(fd)

    def test_3_close_without_the_daemon(self):
        path, disk = deliver(self.gw, self.box)
        fd = os.open(path, os.O_RDONLY)
        with Stopped(self.gw):
            done, _, t = in_thread(lambda: os.close(fd), STOPPED_WAIT)
        t.join(30)
        self.assertTrue(done, 'close(2) of a message asked the stopped daemon (FLUSH)')

    def test_4_mmap_without_the_daemon(self):
        # In a process of its own: a page fault holds Python's lock, and
        # this process must be free to resume the daemon when it waits.
        path, disk = deliver(self.gw, self.box)
        child = subprocess.Popen([sys.executable, '-c', MMAP_CHILD, path], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
        try:
            self.assertEqual(child.stdout.readline(), b'mapped\n')
            with Stopped(self.gw):
                child.stdin.write(b'go\n')
                child.stdin.flush()
                ready, _, _ = select.select([child.stdout], [], [], STOPPED_WAIT)
            self.assertTrue(ready, 'page faults of a mapped message waited for the stopped daemon')
            self.assertEqual(child.stdout.readline().strip().decode(),
                             hashlib.sha256(disk).hexdigest())
        finally:
            child.kill()
            child.wait(30)

    def test_5_two_opens_share_one_backing_file(self):
        path, disk = deliver(self.gw, self.box)
        # two processes and this one, at once: the kernel refuses a second
        # backing file for one inode (EIO at open), so they must share one
        fd = os.open(path, os.O_RDONLY)
        try:
            procs = [subprocess.Popen(['sh', '-c', 'exec 3<"$1"; sleep 1; cat <&3', 'sh', path],
                                      stdout=subprocess.PIPE) for _ in range(2)]
            outs = [p.communicate(timeout=30)[0] for p in procs]
            self.assertEqual([p.returncode for p in procs], [0, 0])
            self.assertEqual(outs, [disk, disk])
            self.assertEqual(pread_all(fd), disk)
        finally:
            os.close(fd)
        # released and opened again: a new backing file, still right
        with open(path, 'rb') as f:
            self.assertEqual(f.read(), disk)

    def test_6_removed_while_open(self):
        path, disk = deliver(self.gw, self.box)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.unlink(self.gw.path('mail', self.box, 'new', os.path.basename(path)))
            wait_until(lambda: not os.path.exists(path), 10, 'the mount to forget the message')
            self.assertEqual(pread_all(fd), disk)
        finally:
            os.close(fd)

    def test_9_counters_at_unmount(self):
        # the kernel sends a RELEASE after close(2) returns: let the last ones arrive
        wait_until(lambda: not spool_files_held(self.gw, self.box), 10,
                   'spoolgate-fs to release every message of ' + self.box)
        self.gw.stop('fs')
        st = stats(self.gw)
        self.assertEqual(st['failed'], 0, st)
        self.assertEqual(st['open_now'], 0, st)	# every backing file closed
        self.assertGreaterEqual(st['opens'], 8, st)
        self.assertLess(st['backing_files'], st['opens'], st)	# test 5 shared one
        self.gw.start_fs()


class Off(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('fspt-off', passthrough='no')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()

    def test_reads_go_through_the_daemon(self):
        state = wait_until(lambda: fs_log_events(self.gw, 'passthrough'), 10, 'event=passthrough')
        self.assertIn('state=off reason=not-wanted', state[0])
        path, disk = deliver(self.gw, 'off' + token())
        fd = os.open(path, os.O_RDONLY)
        try:
            with Stopped(self.gw):
                done, _, t = in_thread(lambda: pread_all(fd), 2.0)
            t.join(30)
            self.assertFalse(done, 'without passthrough a read needs the daemon')
            self.assertFalse(t.is_alive())
            self.assertEqual(pread_all(fd), disk)
        finally:
            os.close(fd)


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS))
