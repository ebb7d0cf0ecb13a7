#!/usr/bin/python3
"""test_replies - the replies of issue 9 that need no other peer than a sink.

Each test provokes its reply as a client would and asserts the basic code
and the RFC 3463 enhanced code (tests/integration/reply_codes.tsv maps every
row of shared/reply-codes.md to a test; test_reply_table.py checks it):
- 521 5.3.2 (RFC 7504): a [listener] with accept_mail = no greets with 521,
  answers 521 to EHLO, MAIL, NOOP and an unknown verb, and 221 to QUIT;
  the other listener of the same daemon greets 220;
- 251 2.1.5 / 551 5.1.6 (RFC 5321 3.4): a [forwards] entry with forwarding
  = yes accepts the recipient for its new address (the sink receives the
  message for alice@example.net; a local new address gets it in its
  mailbox); with forwarding = no, 551 names the new address;
- 214 2.0.0 HELP lists the commands and HELP <verb> explains each one;
  211 2.0.0 HELP STATUS gives the sessions and the queue size to a relay
  client (the count follows a queued message), 214 says no to others;
  504 5.5.4 for an unknown topic;
- 450 4.2.0: a script holds flock(1) on mail/<box>/.lock in the spool:
  RCPT for that mailbox, and the end of the data of a message whose RCPT
  came before the lock, get 450; once the lock is released the message
  is taken and stored; the same lock taken through the mount with
  flock(1) on inbox/<box>/.lock: a second `flock -n` there is refused,
  a blocking one waits for the release, RCPT gets 450 until the holder
  lets go, then the message is stored;
- 252 2.5.0 VRFY by default; with vrfy = yes 250 2.1.5 for a local mailbox,
  550 5.1.1 for an unknown one, 251 for a forward, 252 for a remote address;
  EXPN 502 5.5.1.
"""

import fcntl
import os
import re
import subprocess
import time
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, queued_id, wait_until
from test_relay import Sink


def token():
    return uuid.uuid4().hex[:12]


def sink_or_skip():
    """An aiosmtpd Sink (test_relay.py), or SkipTest where aiosmtpd is missing."""
    try:
        return Sink()
    except ImportError as e:
        raise unittest.SkipTest('aiosmtpd is not available: %s' % e)


def started(cls, name, **cfg):
    """A gateway for a test class: made, cleaned up with the class, smtpd started."""
    gw = harness.Instance(name, **cfg)
    cls.addClassCleanup(gw.cleanup)
    gw.start_smtpd()
    return gw


def send(c, sender, rcpts, body):
    """MAIL, RCPT each (asserting nothing), DATA: the replies of the RCPTs and of the data."""
    assert_reply(unittest.TestCase(), c.cmd('MAIL FROM:<%s>' % sender), 250, '2.1.0')
    got = [c.cmd('RCPT TO:<%s>' % r) for r in rcpts]
    r = c.cmd('DATA')
    if r.code != 354:
        return got, r
    c.send(body.replace('\n', '\r\n') + '\r\n.\r\n')
    return got, c.reply()


class NoMail(unittest.TestCase):
    """accept_mail = no on one listener (RFC 7504 521)."""

    @classmethod
    def setUpClass(cls):
        cls.nomail_port = harness.free_port()
        cls.gw = started(cls, 'nomail', hostname='null-mx.test', listeners={
            'nomail': {'listen': '127.0.0.1:%d' % cls.nomail_port, 'accept_mail': False},
        })

    def test_521_greeting_and_commands(self):
        """greeting 521 5.3.2 <host> does not accept mail; EHLO, MAIL, NOOP, junk: 521; QUIT: 221"""
        with RawSMTP(('127.0.0.1', self.nomail_port)) as c:
            assert_reply(self, c.greeting, 521, '5.3.2', 'greeting')
            self.assertEqual(c.greeting.lines[0], '5.3.2 null-mx.test does not accept mail')
            for cmd in ('EHLO client.example', 'HELO client.example', 'MAIL FROM:<a@example.org>',
                        'RCPT TO:<postmaster@localhost>', 'NOOP', 'HELP', 'XYZZY', 'STARTTLS'):
                r = c.cmd(cmd)
                assert_reply(self, r, 521, '5.3.2', cmd)
            assert_reply(self, c.cmd('QUIT'), 221, '2.0.0', 'QUIT')
            self.assertTrue(c.wait_closed(), 'the connection stays open after QUIT')

    def test_other_listener_accepts(self):
        """the listener without accept_mail = no greets 220 as before"""
        with RawSMTP(self.gw.smtp_addr) as c:
            assert_reply(self, c.greeting, 220, None, 'greeting')
            c.ehlo()

    def test_521_counts_toward_max_errors(self):
        """a client that never says QUIT is closed after max_errors 521s (421 4.7.0)"""
        with RawSMTP(('127.0.0.1', self.nomail_port)) as c:
            for i in range(19):
                assert_reply(self, c.cmd('NOOP'), 521, '5.3.2', 'NOOP %d' % i)
            c.send('NOOP\r\n')
            assert_reply(self, c.reply(), 521, '5.3.2', 'the 20th')
            assert_reply(self, c.reply(), 421, '4.7.0', 'max_errors')
            self.assertTrue(c.wait_closed())


class Forwards(unittest.TestCase):
    """[forwards]: 251 with forwarding = yes, 551 with forwarding = no."""

    FORWARDS = {'alice@localhost': 'alice@example.net', 'carol@localhost': 'dave@localhost'}

    @classmethod
    def setUpClass(cls):
        cls.sink = sink_or_skip()
        cls.addClassCleanup(cls.sink.stop)
        cls.gw = started(cls, 'forwards', smarthost='127.0.0.1:%d' % cls.sink.port,
                         forwards=cls.FORWARDS, scan_interval=300)
        cls.off = started(cls, 'forwards-off', forwards=cls.FORWARDS, forwarding=False)

    def test_251_forwarded_to_remote(self):
        """RCPT alice@localhost: 251 2.1.5 will forward to <alice@example.net>; the sink gets it"""
        tok = token()
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            (r,), end = send(c, 'sender@example.org', ['alice@localhost'],
                             'Subject: fwd %s\n\nforwarded %s' % (tok, tok))
            assert_reply(self, r, 251, '2.1.5', 'RCPT')
            self.assertEqual(r.lines[0], '2.1.5 User not local; will forward to <alice@example.net>')
            assert_reply(self, end, 250, '2.0.0', 'end of data')
        msgid = queued_id(end.text)
        got = wait_until(lambda: self.sink.find(tok), 20, 'the forwarded message at the sink')
        self.assertEqual(got[0]['rcpt'], ['alice@example.net'])
        self.assertEqual(got[0]['from'], 'sender@example.org')
        self.assertEqual(self.gw.mailbox_new('alice'), [], 'alice@localhost got a local copy')
        self.assertIn('event=forward', self.gw.read_log('smtpd'))
        self.assertTrue(msgid)

    def test_251_forwarded_to_local(self):
        """RCPT carol@localhost (forward to dave@localhost): 251, the message lands in mail/dave"""
        tok = token()
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            (r,), end = send(c, 'sender@example.org', ['carol@localhost'],
                             'Subject: fwd %s\n\nlocal %s' % (tok, tok))
            assert_reply(self, r, 251, '2.1.5', 'RCPT')
            assert_reply(self, end, 250, '2.0.0', 'end of data')
        box = wait_until(lambda: self.gw.mailbox_new('dave'), 10, 'a message in mail/dave')
        self.assertIn(tok.encode(), self.gw.read_mail('dave', box[0]))
        self.assertEqual(self.gw.mailbox_new('carol'), [])

    def test_551_when_forwarding_is_off(self):
        """forwarding = no: 551 5.1.6 User not local; please try <alice@example.net>"""
        with RawSMTP(self.off.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd('MAIL FROM:<sender@example.org>'), 250)
            r = c.cmd('RCPT TO:<alice@localhost>')
            assert_reply(self, r, 551, '5.1.6', 'RCPT')
            self.assertEqual(r.lines[0], '5.1.6 User not local; please try <alice@example.net>')
            # nothing was accepted: DATA has no valid recipient
            assert_reply(self, c.cmd('DATA'), 554, '5.5.1', 'DATA')

    def test_forward_key_must_be_local(self):
        """a [forwards] key outside local_domains stops the start with a message naming it"""
        bad = harness.Instance('forwards-bad', forwards={'alice@example.com': 'alice@example.net'})
        self.addCleanup(bad.cleanup)
        with self.assertRaises(harness.DaemonError) as cm:
            bad.start_smtpd()
        self.assertIn('[forwards] alice@example.com: not in [spool] local_domains', str(cm.exception))


class MailboxLock(unittest.TestCase):
    """450 4.2.0 while a script holds the mailbox's lock (common/mboxlock.h)."""

    @classmethod
    def setUpClass(cls):
        cls.gw = started(cls, 'mboxlock')

    def lock_path(self, box):
        return self.gw.path('mail', box, '.lock')

    def hold_lock(self, box):
        """flock(1) holds the lock until the test ends (the process is always killed)."""
        with RawSMTP(self.gw.smtp_addr) as c:		# a first message makes mail/<box>
            c.ehlo()
            _, end = send(c, 'a@example.org', ['%s@localhost' % box], 'Subject: first\n\nfirst')
            assert_reply(self, end, 250, '2.0.0', 'first message')
        return self.flock(box)

    def flock(self, box):
        """`flock <lock> sleep 120` in a process group of its own, killed (lock released) by release()."""
        p = subprocess.Popen(['flock', self.lock_path(box), 'sleep', '120'], start_new_session=True)
        self.addCleanup(self.release, p)
        wait_until(lambda: self.locked(box), 10, 'flock(1) to hold %s' % self.lock_path(box))
        return p

    @staticmethod
    def release(p):
        """Kills flock(1) and its sleep, which holds the lock too."""
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)

    def test_450_while_locked_then_delivered(self):
        """RCPT to a locked mailbox: 450 4.2.0; after the lock is released: 250 and stored"""
        p = self.hold_lock('lockbox')
        before = self.gw.mailbox_new('lockbox')
        tok = token()
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
            r = c.cmd('RCPT TO:<lockbox@localhost>')
            assert_reply(self, r, 450, '4.2.0', 'RCPT while locked')
            assert_reply(self, c.cmd('RSET'), 250)
            self.release(p)
            # flock(1)'s sleep holds the lock too: SIGKILL reaches it a moment later
            wait_until(lambda: not self.locked('lockbox'), 10, 'the lock released')
            (r,), end = send(c, 'a@example.org', ['lockbox@localhost'], 'Subject: %s\n\nafter' % tok)
            assert_reply(self, r, 250, '2.1.5', 'RCPT after the release')
            assert_reply(self, end, 250, '2.0.0', 'end of data')
        after = self.gw.mailbox_new('lockbox')
        self.assertEqual(len(after), len(before) + 1)
        self.assertTrue(any(tok.encode() in self.gw.read_mail('lockbox', n) for n in after))

    def test_450_at_end_of_data_when_locked_meanwhile(self):
        """the lock taken between RCPT and the end of data: 450 4.2.0, nothing appears in the mailbox"""
        with RawSMTP(self.gw.smtp_addr) as c:		# makes mail/late
            c.ehlo()
            _, end = send(c, 'a@example.org', ['late@localhost'], 'Subject: first\n\nfirst')
        before = self.gw.mailbox_new('late')
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
            assert_reply(self, c.cmd('RCPT TO:<late@localhost>'), 250, '2.1.5')
            assert_reply(self, c.cmd('DATA'), 354)
            self.flock('late')
            c.send('Subject: late\r\n\r\nlate\r\n.\r\n')
            assert_reply(self, c.reply(), 450, '4.2.0', 'end of data while locked')
        self.assertEqual(self.gw.mailbox_new('late'), before)
        self.assertIn('event=mailbox-locked', self.gw.read_log('smtpd'))

    def locked(self, box):
        return self.locked_at(self.lock_path(box))

    @staticmethod
    def locked_at(path):
        """Whether someone holds the lock exclusively (a shared try fails)."""
        try:
            with open(path) as f:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        except FileNotFoundError:
            return False


class MailboxLockThroughMount(unittest.TestCase):
    """flock(1) on inbox/<box>/.lock through spoolgate-fs is the spool's lock (fs/lockfile.h)."""

    @classmethod
    def setUpClass(cls):
        why = harness.fuse_available()
        if why:
            raise unittest.SkipTest(why)
        cls.gw = started(cls, 'mntlock')
        cls.gw.start_fs()

    def lock(self, box):
        return os.path.join(self.gw.mnt, 'inbox', box, '.lock')

    def flock_n(self, box):
        """The exit status of a second shell's `flock -n <lock> true` through the mount (1: busy)."""
        return subprocess.run(['flock', '-n', '-E', '3', self.lock(box), 'true'], timeout=10).returncode

    def test_flock_through_the_mount_450_then_delivered(self):
        """a mount holder: `flock -n` elsewhere busy, RCPT 450 4.2.0; released: 250 and stored"""
        with RawSMTP(self.gw.smtp_addr) as c:		# a first message makes the mailbox
            c.ehlo()
            _, end = send(c, 'a@example.org', ['mntbox@localhost'], 'Subject: first\n\nfirst')
            assert_reply(self, end, 250, '2.0.0', 'first message')
        self.assertEqual(self.flock_n('mntbox'), 0, 'nobody holds it yet')
        p = subprocess.Popen(['flock', self.lock('mntbox'), 'sleep', '120'], start_new_session=True)
        self.addCleanup(MailboxLock.release, p)
        spool_lock = self.gw.path('mail', 'mntbox', '.lock')
        wait_until(lambda: MailboxLock.locked_at(spool_lock), 10, "the mount holder's lock on the spool's file")
        self.assertEqual(self.flock_n('mntbox'), 3, 'a second shell sees it busy')
        waiter = subprocess.Popen(['flock', '-w', '30', self.lock('mntbox'), 'true'], start_new_session=True)
        self.addCleanup(MailboxLock.release, waiter)
        before = self.gw.mailbox_new('mntbox')
        tok = token()
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
            assert_reply(self, c.cmd('RCPT TO:<mntbox@localhost>'), 450, '4.2.0', 'RCPT while held through the mount')
            assert_reply(self, c.cmd('RSET'), 250)
            time.sleep(0.5)
            self.assertIsNone(waiter.poll(), 'a blocking flock waits while the lock is held')
            MailboxLock.release(p)
            self.assertEqual(waiter.wait(timeout=10), 0, 'the blocking flock has it once released')
            wait_until(lambda: not MailboxLock.locked_at(spool_lock), 10, "the waiter's lock gone with it")
            (r,), end = send(c, 'a@example.org', ['mntbox@localhost'], 'Subject: %s\n\nafter' % tok)
            assert_reply(self, r, 250, '2.1.5', 'RCPT after the release')
            assert_reply(self, end, 250, '2.0.0', 'end of data')
        self.assertEqual(self.flock_n('mntbox'), 0, 'free again')
        after = self.gw.mailbox_new('mntbox')
        self.assertEqual(len(after), len(before) + 1)
        self.assertTrue(any(tok.encode() in self.gw.read_mail('mntbox', n) for n in after))


class Help(unittest.TestCase):
    """HELP (214), HELP STATUS (211), VRFY (252 / 250 / 550), EXPN (502)."""

    @classmethod
    def setUpClass(cls):
        cls.mx_port = harness.free_port()
        cls.gw = started(cls, 'help', hostname='help.test', listeners={
            'mx': {'listen': '127.0.0.1:%d' % cls.mx_port, 'relay_networks': ''},
        })
        cls.vrfy = started(cls, 'vrfy', vrfy=True, mailboxes='bob postmaster',
                           forwards={'alice@localhost': 'alice@example.net'})

    def test_214_help_lists_commands(self):
        """HELP: 214 2.0.0, several lines, naming every command"""
        with RawSMTP(self.gw.smtp_addr) as c:
            r = c.cmd('HELP')
            assert_reply(self, r, 214, '2.0.0', 'HELP')
            self.assertGreaterEqual(len(r.lines), 3, r)
            for verb in ('EHLO', 'MAIL', 'RCPT', 'DATA', 'QUIT', 'VRFY', 'STARTTLS'):
                self.assertIn(verb, r.text)

    def test_214_help_for_every_command(self):
        """HELP <verb> for each verb HELP lists: 214 2.0.0, a syntax line and an explanation"""
        with RawSMTP(self.gw.smtp_addr) as c:
            listing = c.cmd('HELP')
            verbs = listing.lines[1].split()[1:] if listing.lines[1].startswith('2.0.0') else []
            self.assertGreaterEqual(len(verbs), 10, listing)
            for verb in verbs:
                r = c.cmd('HELP ' + verb.lower())
                assert_reply(self, r, 214, '2.0.0', 'HELP ' + verb)
                self.assertTrue(r.lines[0].startswith('2.0.0 Syntax: ' + verb), r)
                self.assertGreaterEqual(len(r.lines), 2, 'no explanation for %s: %r' % (verb, r))

    def test_504_help_unknown_topic(self):
        """HELP XYZZY: 504 5.5.4"""
        with RawSMTP(self.gw.smtp_addr) as c:
            assert_reply(self, c.cmd('HELP XYZZY'), 504, '5.5.4', 'HELP XYZZY')

    def test_211_status_for_relay_clients(self):
        """HELP STATUS from relay_networks: 211 2.0.0 with sessions and the queue, which counts a queued message"""
        with RawSMTP(self.gw.smtp_addr) as c:
            before = c.cmd('HELP STATUS')
            assert_reply(self, before, 211, '2.0.0', 'HELP STATUS')
            self.assertIn('help.test', before.text)
            self.assertRegex(before.text, r'sessions: [1-9]\d* of 100')
            waiting = int(re.search(r'queue: (\d+) waiting', before.text).group(1))
            c.ehlo()
            # nothing listens at the smarthost, retry_min is an hour: it stays queued
            _, end = send(c, 'sender@example.org', ['someone@example.net'], 'Subject: q\n\nq')
            assert_reply(self, end, 250, '2.0.0', 'end of data')
            wait_until(lambda: self.gw.listdir('queue'), 10, 'a record in queue/')
            after = c.cmd('HELP STATUS')
            assert_reply(self, after, 211, '2.0.0', 'HELP STATUS')
            m = re.search(r'queue: (\d+) waiting, (\d+) being delivered', after.text)
            self.assertIsNotNone(m, after)
            self.assertEqual(int(m.group(1)) + int(m.group(2)), waiting + 1, (before, after))

    def test_214_status_refused_to_strangers(self):
        """HELP STATUS on a listener where the client may not relay: 214, no numbers"""
        with RawSMTP(('127.0.0.1', self.mx_port)) as c:
            r = c.cmd('HELP STATUS')
            assert_reply(self, r, 214, '2.0.0', 'HELP STATUS')
            self.assertNotIn('sessions:', r.text)
            self.assertIn('relay_networks only', r.text)

    def test_252_vrfy_by_default(self):
        """VRFY without vrfy = yes: 252 2.5.0 whatever the address"""
        with RawSMTP(self.gw.smtp_addr) as c:
            assert_reply(self, c.cmd('VRFY <postmaster@localhost>'), 252, '2.5.0', 'VRFY')
            assert_reply(self, c.cmd('VRFY nobody@localhost'), 252, '2.5.0', 'VRFY')

    def test_vrfy_yes(self):
        """vrfy = yes: 250 2.1.5 local mailbox, 550 5.1.1 unknown, 251 2.1.5 forward, 252 remote, 501 junk"""
        with RawSMTP(self.vrfy.smtp_addr) as c:
            r = c.cmd('VRFY <bob@localhost>')
            assert_reply(self, r, 250, '2.1.5', 'VRFY bob')
            self.assertIn('<bob@localhost>', r.text)
            assert_reply(self, c.cmd('VRFY nobody@localhost'), 550, '5.1.1', 'VRFY nobody')
            r = c.cmd('VRFY alice@localhost')
            assert_reply(self, r, 251, '2.1.5', 'VRFY alice')
            self.assertIn('<alice@example.net>', r.text)
            assert_reply(self, c.cmd('VRFY someone@example.net'), 252, '2.5.0', 'VRFY remote')
            assert_reply(self, c.cmd('VRFY <<<'), 501, '5.5.4', 'VRFY junk')

    def test_502_expn(self):
        """EXPN: 502 5.5.1"""
        with RawSMTP(self.gw.smtp_addr) as c:
            assert_reply(self, c.cmd('EXPN staff'), 502, '5.5.1', 'EXPN')


if __name__ == '__main__':
    harness.main()
