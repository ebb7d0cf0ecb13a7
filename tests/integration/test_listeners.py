#!/usr/bin/python3
"""test_listeners - several listeners in one configuration, each its own policy.

One spoolgate-smtpd with the [smtpd] shorthand listener (relay allowed from
loopback, as before) and a [listener mx] whose relay_networks is empty: the
same client may relay through the first and gets 550 5.7.1 for a remote
domain on the second, while mail for a local domain is taken on both and
stored once. The log names the listener of each session; `-p "listener
NAME.listen"` prints a listener's address; a configuration with only
[listener] sections does not bind the shorthand's default address; a
listener that cannot bind stops the start with a message naming it.
"""

import ctypes
import os
import smtplib
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, queued_id


def port_is_free(port):
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class TwoListeners(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mx_port = harness.free_port()
        cls.gw = harness.Instance('listeners', listeners={
            'mx': {'listen': '127.0.0.1:%d' % cls.mx_port, 'relay_networks': ''},
        })
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def rcpt(self, addr, to):
        with RawSMTP(addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250)
            return c.cmd('RCPT TO:<%s>' % to)

    def test_each_listener_logged_and_bound(self):
        self.assertEqual(self.gw.listener_addr('smtpd'), ('127.0.0.1', self.gw.port))
        self.assertEqual(self.gw.listener_addr('mx'), ('127.0.0.1', self.mx_port))
        self.assertIn('listeners=2', self.gw.read_log('smtpd'))

    def test_relay_policy_is_per_listener(self):
        # loopback may relay through the shorthand listener ([smtpd] relay_networks)...
        assert_reply(self, self.rcpt(self.gw.smtp_addr, 'carol@example.net'), 250, '2.1.5')
        # ...but not through mx, whose relay_networks is empty.
        r = self.rcpt(('127.0.0.1', self.mx_port), 'carol@example.net')
        assert_reply(self, r, 550, '5.7.1')
        self.assertIn('relay', r.text.lower())
        log = self.gw.read_log('smtpd')
        self.assertRegex(log, r'event=connect session=\d+ client=127\.0\.0\.1 listener=mx relay=no')
        self.assertRegex(log, r'event=connect session=\d+ client=127\.0\.0\.1 listener=smtpd relay=yes')

    def test_local_mail_on_the_mx_listener(self):
        with smtplib.SMTP('127.0.0.1', self.mx_port, timeout=30) as c:
            c.ehlo('client.example')
            self.assertEqual(c.mail('alice@example.org')[0], 250)
            self.assertEqual(c.rcpt('bob@localhost')[0], 250)
            code, text = c.data(b'Subject: via mx\r\n\r\nhello\r\n')
        self.assertEqual(code, 250, text)
        name = self.gw.find_mail('bob', queued_id(text.decode()))
        self.assertIsNotNone(name)
        self.assertIn(b'hello', self.gw.read_mail('bob', name))

    def test_p_prints_a_listener(self):
        r = subprocess.run([harness.SMTPD, '-c', self.gw.conf, '-p', 'listener mx.listen'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), '127.0.0.1:%d' % self.mx_port)
        r = subprocess.run([harness.SMTPD, '-c', self.gw.conf, '-p', 'listener nope.listen'],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)


def server_socket_of(pid, server_port, client_port):
    """A duplicate (pidfd_getfd) of the socket process pid accepted for the
    connection from client_port to server_port on 127.0.0.1."""
    inode = None
    with open('/proc/net/tcp') as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(':')[1], 16) == server_port and
                    int(remote.split(':')[1], 16) == client_port):
                inode = fields[9]
    if inode is None:
        raise AssertionError('no connection %d -> %d in /proc/net/tcp' % (client_port, server_port))
    for name in os.listdir('/proc/%d/fd' % pid):
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, name))
        except OSError:
            continue
        if target == 'socket:[%s]' % inode:
            libc = ctypes.CDLL(None, use_errno=True)
            pidfd = os.pidfd_open(pid)
            try:
                fd = libc.syscall(438, pidfd, int(name), 0)	# SYS_pidfd_getfd
            finally:
                os.close(pidfd)
            if fd < 0:
                raise OSError(ctypes.get_errno(), 'pidfd_getfd')
            return socket.socket(fileno=fd)
    raise AssertionError('smtpd has no descriptor for socket inode %s' % inode)


class NoDelay(unittest.TestCase):
    """Replies are not held back by Nagle's algorithm: accepted sockets have TCP_NODELAY."""

    def test_accepted_socket_has_tcp_nodelay(self):
        if not harness.IS_ROOT:
            self.skipTest('pidfd_getfd of the daemon needs root')
        gw = harness.Instance('nodelay')
        self.addCleanup(gw.cleanup)
        proc = gw.start_smtpd()
        with RawSMTP(gw.smtp_addr) as c:
            c.ehlo()
            sock = server_socket_of(proc.pid, gw.port, c.sock.getsockname()[1])
            with sock:
                self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)


class OnlyNamedListeners(unittest.TestCase):

    def test_no_shorthand_when_only_named(self):
        sub_port = harness.free_port()
        gw = harness.Instance('named', listen=None, listeners={
            'submission': {'listen': '127.0.0.1:%d' % sub_port},
        })
        self.addCleanup(gw.cleanup)
        # The shorthand's default address would be 127.0.0.1:2525: nothing of ours may be there.
        gw.start_smtpd()
        self.assertIn('listeners=1', gw.read_log('smtpd'))
        self.assertEqual(gw.listener_addr('submission'), ('127.0.0.1', sub_port))
        self.assertNotIn('listener=smtpd', gw.read_log('smtpd'))
        with RawSMTP(('127.0.0.1', sub_port)) as c:
            assert_reply(self, c.ehlo(), 250)

    def test_a_listener_that_cannot_bind_stops_the_start(self):
        busy = socket.socket()
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        gw = harness.Instance('busy', listeners={'second': {'listen': '127.0.0.1:%d' % port}})
        self.addCleanup(gw.cleanup)
        with self.assertRaises(harness.DaemonError) as cm:
            gw.start_smtpd()
        self.assertRegex(str(cm.exception), r'listener=second listen=127\.0\.0\.1:%d error="Address already in use"'
                         % port)
        # The first listener, bound before, is not left behind.
        self.assertTrue(port_is_free(gw.port))


if __name__ == '__main__':
    harness.main()
