#!/usr/bin/python3
"""test_notify - the daemons tell systemd when they are ready (Type=notify).

The units in etc/systemd/ start both daemons with Type=notify.  Here a
datagram socket of the test plays systemd's: its path goes to the daemon
in $NOTIFY_SOCKET, as systemd passes it, and libsystemd's sd_notify()
in the daemon sends to it.  smtpd sends READY=1 (with a STATUS= naming
its address) once the spool is recovered and every listener is bound,
and STOPPING=1 at SIGTERM, before it exits; a start that fails at its
second listener (the port is taken) or at the spool (not a directory)
sends no READY=1, so systemd reports the start as failed instead of
starting spoolgate-fs after it.  spoolgate-fs sends READY=1 when the
filesystem is mounted (the mount is there when it arrives) and STOPPING=1
when it unmounts.  Skipped when the build has no libsystemd (meson says
so: the units are then Type=simple).
"""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply


def built_with_libsystemd():
    """Does the build link libsystemd (meson's systemd feature found it)?"""
    with open(harness.SMTPD, 'rb') as f:
        return b'sd_notify' in f.read()


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket, writable by the
    daemon after it dropped root."""

    def __init__(self, directory):
        self.path = os.path.join(directory, 'notify.sock')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)

    def env(self):
        return {'NOTIFY_SOCKET': self.path}

    def messages(self, timeout):
        """Every datagram until one arrives that holds no more within timeout."""
        got = []
        self.sock.settimeout(timeout)
        try:
            while True:
                got.append(self.sock.recv(4096).decode())
                self.sock.settimeout(0.2)
        except (socket.timeout, BlockingIOError):
            return got

    def close(self):
        self.sock.close()


def states(messages):
    """The KEY=value assignments of the datagrams, in order."""
    return [line for m in messages for line in m.split('\n') if line]


@unittest.skipUnless(built_with_libsystemd(), 'built without libsystemd: the units are Type=simple')
class Smtpd(unittest.TestCase):

    def instance(self, name, **cfg):
        gw = harness.Instance(name, **cfg)
        self.addCleanup(gw.cleanup)
        notify = NotifySocket(gw.dir)
        self.addCleanup(notify.close)
        return gw, notify

    def test_ready_once_listening_and_stopping_at_sigterm(self):
        second = harness.free_port()
        gw, notify = self.instance('notify', listeners={'mx': {'listen': '127.0.0.1:%d' % second}})
        gw.start_smtpd(env=notify.env())
        got = states(notify.messages(harness.START_TIMEOUT))
        self.assertEqual(got, ['READY=1', 'STATUS=listening on 127.0.0.1:%d (2 listeners)' % gw.port])
        for addr in (gw.smtp_addr, ('127.0.0.1', second)):
            with RawSMTP(addr) as c:
                assert_reply(self, c.ehlo(), 250)
        self.assertEqual(gw.stop('smtpd'), 0)
        self.assertEqual(states(notify.messages(1.0)), ['STOPPING=1'])

    def test_no_ready_when_a_listener_cannot_bind(self):
        busy = socket.socket()
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        gw, notify = self.instance('notify-busy', listeners={
            'mx': {'listen': '127.0.0.1:%d' % busy.getsockname()[1]}})
        with self.assertRaises(harness.DaemonError):
            gw.start_smtpd(env=notify.env())
        self.assertEqual(notify.messages(0.5), [])

    def test_no_ready_when_the_spool_cannot_be_opened(self):
        gw, notify = self.instance('notify-spool')
        os.rmdir(gw.spool)
        with open(gw.spool, 'w') as f:
            f.write('not a directory\n')
        with self.assertRaises(harness.DaemonError):
            gw.start_smtpd(env=notify.env())
        self.assertEqual(notify.messages(0.5), [])


@unittest.skipUnless(built_with_libsystemd(), 'built without libsystemd: the units are Type=simple')
class Fs(unittest.TestCase):

    def test_ready_when_mounted_and_stopping_at_unmount(self):
        reason = harness.fuse_available()
        if reason:
            self.skipTest(reason)
        gw = harness.Instance('notify-fs')
        self.addCleanup(gw.cleanup)
        notify = NotifySocket(gw.dir)
        self.addCleanup(notify.close)
        gw._start('fs', [harness.FS, '-c', gw.conf, '-f'], 'event=mounted', notify.env())
        got = states(notify.messages(harness.START_TIMEOUT))
        self.assertEqual(got, ['READY=1', 'STATUS=mounted at %s' % gw.mnt])
        self.assertTrue(harness.is_mounted(gw.mnt))
        self.assertEqual(gw.stop('fs'), 0)
        self.assertEqual(states(notify.messages(1.0)), ['STOPPING=1'])


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS))
